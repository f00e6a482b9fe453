-- wrk script: wrk_post.lua with a pause before each request, to post at a set rate.
--
-- Usage: wrk -s wrk_paced.lua <url> -- <bodies file> <thread count> <pause ms>
-- Each connection waits <pause ms> before each request, so C connections post
-- about C / (pause + latency) webhooks a second. wrk_post.lua, beside this
-- file, does the rest.

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "wrk_post.lua")

local post_init = init
local pause = 0

function init(args)
  post_init(args)
  pause = tonumber(args[3])
end

function delay()
  return pause
end
