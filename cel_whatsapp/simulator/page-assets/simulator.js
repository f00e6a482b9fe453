// The simulator's chat page. It renders the Cloud API payloads the bot sent
// (as Meta documents them) and sends what the user does as Meta-shaped
// messages through the app's /sim/api. No data from a payload is ever put
// into innerHTML: every piece of text goes through textContent.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("simulator-config").textContent);
  const api = config.api;
  const $ = (id) => document.getElementById(id);
  const list = $("messages");
  const input = $("text");
  const bubbles = new Map(); // wamid -> bubble element
  const texts = new Map(); // wamid -> short text, for quotes
  let epoch = "";
  let last = 0;
  let typingTimer = null;
  let unseen = [];
  let seenTimer = null;
  let typing = false;
  let offline = false;

  $("bot-name").textContent = config.bot.name;
  input.maxLength = config.maxText;

  // -- helpers ------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // One of the page's own SVG icons (the <symbol>s in index.html), never an
  // emoji: many machines have no emoji font and would show empty boxes.
  const SVG = "http://www.w3.org/2000/svg";
  function icon(name) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "i");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const use = document.createElementNS(SVG, "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  }

  function safeUrl(value) {
    try {
      const url = new URL(String(value), window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function mediaSrc(media) {
    if (!media) return null;
    if (media.id) return `${api}/media/${encodeURIComponent(media.id)}`;
    return safeUrl(media.link);
  }

  function clock(seconds) {
    const date = seconds ? new Date(seconds * 1000) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function notice(message) {
    const box = $("notice");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(() => (box.hidden = true), 4000);
  }

  // WhatsApp formatting: *bold*, _italic_, ~strike~, ```mono``` and links.
  const FORMAT = /(```[\s\S]+?```|\*[^*\n]+\*|_[^_\n]+_|~[^~\n]+~|https?:\/\/[^\s<]+)/g;
  function formatted(text) {
    const span = el("span", "text");
    const source = String(text);
    let at = 0;
    for (const match of source.matchAll(FORMAT)) {
      span.append(source.slice(at, match.index));
      const token = match[0];
      let node;
      if (token.startsWith("http")) {
        node = el("a", null, token);
        node.href = safeUrl(token) || "#";
        node.target = "_blank";
        node.rel = "noopener noreferrer";
      } else if (token.startsWith("```")) {
        node = el("code", null, token.slice(3, -3));
      } else {
        const tag = { "*": "strong", _: "em", "~": "s" }[token[0]];
        node = el(tag, null, token.slice(1, -1));
      }
      span.append(node);
      at = match.index + token.length;
    }
    span.append(source.slice(at));
    return span;
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function bubble(direction, id, extraClass) {
    const node = el("div", `msg ${direction}${extraClass ? " " + extraClass : ""}`);
    if (id) {
      node.dataset.id = id;
      bubbles.set(id, node);
    }
    return node;
  }

  function addMeta(node, at, withTicks) {
    const meta = el("span", "meta", clock(at));
    if (withTicks) {
      const ticks = el("span", "ticks");
      ticks.append(icon("tick"));
      ticks.title = "sent";
      meta.append(ticks);
    }
    node.append(meta);
  }

  function quote(node, messageId) {
    if (!messageId) return;
    const q = el("div", "quote", texts.get(messageId) || "a message");
    node.append(q);
  }

  // -- rendering what the bot sent (Cloud API send payloads) ------------------------

  function renderMedia(node, kind, media) {
    const src = mediaSrc(media);
    if (!src) {
      node.append(el("div", "small", `[${kind} without a usable id or link]`));
      return;
    }
    if (kind === "image" || kind === "sticker") {
      const img = el("img", "media");
      img.src = src;
      img.alt = media.caption || kind;
      img.addEventListener("load", scrollDown);
      node.append(img);
    } else if (kind === "video") {
      const video = el("video", "media");
      video.src = src;
      video.controls = true;
      node.append(video);
    } else if (kind === "audio") {
      const audio = el("audio");
      audio.src = src;
      audio.controls = true;
      node.append(audio);
    } else {
      const doc = el("a", "doc");
      doc.href = src;
      doc.target = "_blank";
      doc.rel = "noopener noreferrer";
      doc.append(icon("doc"), el("span", null, media.filename || "Document"));
      node.append(doc);
    }
    if (media.caption) {
      const caption = formatted(media.caption);
      caption.classList.add("caption");
      node.append(caption);
    }
  }

  function renderLocation(node, place) {
    const link = el("a", "place");
    const lat = Number(place.latitude);
    const lon = Number(place.longitude);
    link.href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const words = el("span");
    words.append(el("div", null, place.name || "Location"));
    if (place.address) words.append(el("div", "small", place.address));
    words.append(el("div", "small", `${lat.toFixed(5)}, ${lon.toFixed(5)}`));
    link.append(icon("pin"), words);
    node.append(link);
  }

  function renderContacts(node, contacts) {
    for (const contact of contacts || []) {
      const card = el("div", "card");
      const words = el("span");
      words.append(el("div", null, (contact.name && contact.name.formatted_name) || "Contact"));
      for (const phone of contact.phones || []) words.append(el("div", "small", phone.phone || phone.wa_id));
      for (const email of contact.emails || []) words.append(el("div", "small", email.email));
      card.append(icon("person"), words);
      node.append(card);
    }
  }

  function renderInteractive(node, id, interactive) {
    const header = interactive.header;
    if (header) {
      if (header.type === "text") node.append(el("div", "header", header.text));
      else if (header[header.type]) renderMedia(node, header.type, header[header.type]);
    }
    if (interactive.body) node.append(formatted(interactive.body.text || ""));
    if (interactive.footer) node.append(el("div", "footer", interactive.footer.text));
    const action = interactive.action || {};
    const actions = el("div", "actions");
    actions.dataset.for = id;
    if (interactive.type === "button") {
      for (const button of action.buttons || []) {
        const reply = button.reply || {};
        const b = el("button", "reply-button", reply.title);
        b.type = "button";
        b.dataset.id = reply.id;
        b.addEventListener("click", () =>
          send({ type: "button_reply", id: reply.id, title: reply.title, reply_to: id }));
        actions.append(b);
      }
    } else if (interactive.type === "list") {
      const open = el("button", "list-open");
      open.append(icon("list"), action.button || "Menu");
      open.type = "button";
      open.addEventListener("click", () => openList(id, interactive));
      actions.append(open);
    } else if (interactive.type === "cta_url") {
      const params = action.parameters || {};
      const link = el("a", "cta");
      link.append(icon("link"), params.display_text || "Open");
      link.href = safeUrl(params.url) || "#";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      actions.append(link);
    } else if (interactive.type === "location_request_message") {
      const share = el("button", "reply-button");
      share.append(icon("pin"), "Send location");
      share.type = "button";
      share.addEventListener("click", () => openDialog("location-dialog"));
      actions.append(share);
    } else {
      node.append(el("div", "small", `[interactive "${interactive.type}" message]`));
    }
    return actions.childElementCount ? actions : null;
  }

  function openList(id, interactive) {
    const dialog = $("list-dialog");
    const action = interactive.action || {};
    $("list-title").textContent = action.button || "Menu";
    const holder = $("list-sections");
    holder.replaceChildren();
    for (const section of action.sections || []) {
      if (section.title) holder.append(el("div", "list-section-title", section.title));
      for (const row of section.rows || []) {
        const b = el("button", "list-row", row.title);
        b.type = "button";
        b.dataset.id = row.id;
        if (row.description) b.append(el("span", "small", row.description));
        b.addEventListener("click", () => {
          dialog.close();
          send({ type: "list_reply", id: row.id, title: row.title, description: row.description, reply_to: id });
        });
        holder.append(b);
      }
    }
    openDialog("list-dialog");
  }

  // A <dialog> keeps its last returnValue: clear it, or Escape would repeat the last choice.
  function openDialog(id) {
    const dialog = $(id);
    dialog.returnValue = "";
    dialog.showModal();
  }

  function summary(payload) {
    const type = payload.type;
    const part = payload[type] || {};
    if (type === "text") return part.body;
    if (type === "interactive") return (part.body && part.body.text) || "menu";
    if (type === "location") return `Location: ${part.name || "unnamed"}`;
    if (part.caption) return part.caption;
    return { image: "Photo", video: "Video", audio: "Audio", document: `Document: ${part.filename || "unnamed"}`, sticker: "Sticker" }[type] || type;
  }

  function showBot(event) {
    const payload = event.payload || {};
    const type = payload.type || "text";
    const part = payload[type] || {};
    if (type === "reaction") {
      react(part.message_id, part.emoji);
      return;
    }
    const node = bubble("in", event.id, type === "sticker" ? "sticker" : "");
    node.dataset.type = type;
    if (payload.context) quote(node, payload.context.message_id);
    let actions = null;
    if (type === "text") node.append(formatted(part.body || ""));
    else if (["image", "video", "audio", "document", "sticker"].includes(type)) renderMedia(node, type, part);
    else if (type === "location") renderLocation(node, part);
    else if (type === "contacts") renderContacts(node, payload.contacts);
    else if (type === "interactive") actions = renderInteractive(node, event.id, part);
    else if (type === "template") {
      node.append(el("div", "header", `Template “${part.name}” (${(part.language && part.language.code) || "?"})`));
      for (const component of part.components || []) {
        const values = (component.parameters || []).map((p) => p.text || p.type).join(", ");
        if (values) node.append(el("div", "small", `${component.type}: ${values}`));
      }
    } else node.append(el("div", "small", `[${type} message]`));
    addMeta(node, event.at, false);
    texts.set(event.id, summary(payload));
    list.append(node);
    if (actions) list.append(actions);
    hideTyping();
    unseen.push(event.id);
    scheduleSeen();
  }

  // -- rendering what the user sent (Meta webhook message objects) ----------------------

  function showUser(event) {
    const message = event.message || {};
    const type = message.type;
    const part = message[type] || {};
    if (type === "reaction") {
      react(part.message_id, part.emoji, "out");
      return;
    }
    const node = bubble("out", event.id, type === "sticker" ? "sticker" : "");
    node.dataset.type = type;
    if (message.context && message.context.id) quote(node, message.context.id);
    let text = "";
    if (type === "text") {
      text = part.body;
      node.append(formatted(text));
    } else if (type === "interactive") {
      const reply = part[part.type] || {};
      text = reply.title;
      node.append(formatted(text || ""));
    } else if (type === "location") {
      text = `Location: ${part.name || "unnamed"}`;
      renderLocation(node, part);
    } else if (["image", "video", "audio", "document", "sticker"].includes(type)) {
      text = part.caption || type;
      renderMedia(node, type, part);
    } else {
      node.append(el("div", "small", `[${type} message]`));
    }
    texts.set(event.id, text);
    addMeta(node, event.at, true);
    list.append(node);
  }

  function react(messageId, emoji, side) {
    const target = bubbles.get(messageId);
    if (!target) return;
    let badge = target.querySelector(".reaction");
    if (!emoji) {
      if (badge) badge.remove();
      target.classList.remove("has-reaction");
      return;
    }
    if (!badge) {
      badge = el("span", "reaction");
      target.append(badge);
    }
    badge.textContent = emoji;
    badge.title = side === "out" ? "your reaction" : "the bot's reaction";
    target.classList.add("has-reaction");
  }

  function setTicks(id, state, detail) {
    const node = bubbles.get(id);
    const ticks = node && node.querySelector(".ticks");
    if (!ticks) return;
    if (state === "failed") {
      ticks.textContent = "!";
      ticks.className = "ticks failed";
      ticks.title = detail || "not delivered";
      return;
    }
    if (ticks.classList.contains("read")) return;
    ticks.replaceChildren(icon("ticks"));
    ticks.className = state === "read" ? "ticks read" : "ticks";
    ticks.title = state;
  }

  function showStatus() {
    const status = $("bot-status");
    status.textContent = offline ? "offline — retrying" : typing ? "typing…" : "online";
    status.classList.toggle("offline", offline);
  }

  // Whether the app answers: every poll and every send tells.
  function reachable(yes) {
    if (offline !== yes) return;
    offline = !yes;
    showStatus();
  }

  function showTyping() {
    typing = true;
    $("typing").hidden = false;
    showStatus();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 25000); // WhatsApp drops it after 25 s
    scrollDown();
  }

  function hideTyping() {
    typing = false;
    $("typing").hidden = true;
    showStatus();
    clearTimeout(typingTimer);
  }

  function note(text, isError) {
    list.append(el("div", isError ? "note error" : "note", text));
  }

  function apply(event) {
    switch (event.kind) {
      case "user": showUser(event); break;
      case "bot": showBot(event); break;
      case "delivery":
        if (event.ok) setTicks(event.id, "delivered");
        else {
          setTicks(event.id, "failed", event.detail);
          note(`The bot's webhook did not accept this message (${event.status || "unreachable"}) ${event.detail || ""}`, true);
        }
        break;
      case "read": setTicks(event.id, "read"); break;
      case "typing": showTyping(); break;
      case "refused": {
        const error = event.error || {};
        const type = (event.payload && event.payload.type) || "message";
        note(`The Graph API refused a ${type} message: ${error.message || "error"}${error.code ? ` (code ${error.code})` : ""}`, true);
        break;
      }
      case "cleared": reset(); break;
    }
  }

  // What to type, while the chat is empty; shown once the server said it is.
  const hint = el("div");
  hint.id = "empty-hint";
  hint.hidden = true;
  (() => {
    hint.append(el("div", "title", "No messages yet"));
    const how = el("p", null, "Type a message below, or try one of these:");
    const examples = el("div", "examples");
    for (const example of config.examples || []) {
      const b = el("button", null, example);
      b.type = "button";
      b.addEventListener("click", () => {
        input.value = example;
        $("composer").requestSubmit();
      });
      examples.append(b);
    }
    const more = el("p");
    more.append(icon("clip"), " sends a photo or a file, ", icon("pin"), " shares a location; double-click a message of the bot to react to it.");
    hint.append(how, examples, more);
  })();

  function showHint() {
    hint.hidden = list.querySelector(".msg") !== null;
  }

  function reset() {
    list.replaceChildren();
    bubbles.clear();
    texts.clear();
    hideTyping();
    note("Messages go to your bot through its real webhook, as Meta would send them.");
    list.append(hint);
  }

  // -- talking to the server -------------------------------------------------------------

  async function poll() {
    for (;;) {
      let delay = 0;
      try {
        // Offline, ask for an answer at once: a waiting request would hide that the server is back.
        const query = `after=${last}&epoch=${encodeURIComponent(epoch)}${offline ? "&wait=0" : ""}`;
        const response = await fetch(`${api}/events?${query}`, { cache: "no-store" });
        const data = await response.json();
        if (!response.ok) throw new Error(data.error || response.statusText);
        if (data.epoch !== epoch) {
          // A cleared conversation, or a restarted hub: start over.
          if (epoch) reset();
          epoch = data.epoch;
          last = 0;
        }
        const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
        for (const event of data.events) {
          if (event.seq <= last && event.kind !== "cleared") continue;
          apply(event);
        }
        last = Math.max(last, data.last);
        showHint();
        if (data.events.length && atBottom) scrollDown();
        delay = data.poll_ms || 0;
        reachable(true);
      } catch (error) {
        // The app is down or cannot reach its hub: say so, and try again.
        reachable(false);
        delay = 2000;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async function post(path, body) {
    body.headers = Object.assign({ "X-Simulator-Page": "1" }, body.headers || {});
    let response;
    try {
      response = await fetch(`${api}/${path}`, body);
    } catch (error) {
      reachable(false);
      throw new Error("the server cannot be reached");
    }
    reachable(true);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  // Resolves to whether the message was accepted.
  async function send(message) {
    try {
      await post("messages", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(message) });
      return true;
    } catch (error) {
      notice(`Not sent: ${error.message}`);
      return false;
    }
  }

  async function sendFile(file, caption) {
    if (file.size > config.maxUpload) {
      notice("That file is too large for WhatsApp.");
      return false;
    }
    const form = new FormData();
    form.append("file", file);
    if (caption) form.append("caption", caption);
    try {
      await post("media", { method: "POST", body: form });
      return true;
    } catch (error) {
      notice(`Not sent: ${error.message}`);
      return false;
    }
  }

  function scheduleSeen() {
    clearTimeout(seenTimer);
    seenTimer = setTimeout(() => {
      if (document.visibilityState !== "visible" || !unseen.length) return;
      const ids = unseen.splice(0, 100);
      post("seen", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ids }) }).catch(() => {});
    }, 400);
  }

  // -- the composer --------------------------------------------------------------------------

  // The box empties at once, as in WhatsApp; a message that did not go out
  // comes back into it (unless something new was typed meanwhile).
  function restore(text) {
    if (input.value) return;
    input.value = text;
    count();
  }

  // A counter near the limit, so the box does not stop silently at it.
  const counter = $("counter");
  const countFrom = config.maxText - 196; // 3,900 of 4,096
  const number = new Intl.NumberFormat("en");
  function count() {
    const length = input.value.length;
    counter.hidden = length < countFrom;
    if (counter.hidden) return;
    const full = length >= config.maxText;
    counter.textContent = `${full ? "limit reached: " : ""}${number.format(length)} / ${number.format(config.maxText)}`;
    counter.classList.toggle("full", full);
  }
  input.addEventListener("input", count);

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    count();
    if (!(await send({ type: "text", text }))) restore(text);
  });
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", async () => {
    const file = $("file").files[0];
    if (!file) return;
    const caption = input.value.trim();
    input.value = "";
    count();
    $("file").value = "";
    if (!(await sendFile(file, caption)) && caption) restore(caption);
  });
  $("share-location").addEventListener("click", () => openDialog("location-dialog"));
  $("location-dialog").addEventListener("close", () => {
    const dialog = $("location-dialog");
    if (dialog.returnValue !== "send") return;
    const form = new FormData($("location-form"));
    send({
      type: "location",
      latitude: Number(form.get("latitude")),
      longitude: Number(form.get("longitude")),
      name: form.get("name") || null,
      address: form.get("address") || null,
    });
  });
  list.addEventListener("dblclick", (e) => {
    const target = e.target.closest(".msg.in");
    // A reaction is content, not an icon: it stays an emoji (a thumbs up).
    if (target && target.dataset.id) send({ type: "reaction", message_id: target.dataset.id, emoji: "\u{1F44D}" });
  });
  $("clear").addEventListener("click", () => openDialog("clear-dialog"));
  $("clear-dialog").addEventListener("close", () => {
    if ($("clear-dialog").returnValue !== "clear") return;
    post("clear", { method: "POST" }).catch((error) => notice(`Not cleared: ${error.message}`));
  });
  document.addEventListener("visibilitychange", scheduleSeen);

  reset();
  poll();
})();
