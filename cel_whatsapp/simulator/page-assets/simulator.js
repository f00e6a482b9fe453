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
  const bubbles = new Map(); // wamid -> bubble element
  const texts = new Map(); // wamid -> short text, for quotes
  let epoch = "";
  let last = 0;
  let typingTimer = null;
  let unseen = [];
  let seenTimer = null;

  $("bot-name").textContent = config.bot.name;

  // -- helpers ------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
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
      const ticks = el("span", "ticks", "✓");
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
      doc.append(el("span", "icon", "📄"), el("span", null, media.filename || "Document"));
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
    link.append(el("span", "icon", "📍"), words);
    node.append(link);
  }

  function renderContacts(node, contacts) {
    for (const contact of contacts || []) {
      const card = el("div", "card");
      const words = el("span");
      words.append(el("div", null, (contact.name && contact.name.formatted_name) || "Contact"));
      for (const phone of contact.phones || []) words.append(el("div", "small", phone.phone || phone.wa_id));
      for (const email of contact.emails || []) words.append(el("div", "small", email.email));
      card.append(el("span", "icon", "👤"), words);
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
      const open = el("button", "list-open", `☰ ${action.button || "Menu"}`);
      open.type = "button";
      open.addEventListener("click", () => openList(id, interactive));
      actions.append(open);
    } else if (interactive.type === "cta_url") {
      const params = action.parameters || {};
      const link = el("a", "cta", `↗ ${params.display_text || "Open"}`);
      link.href = safeUrl(params.url) || "#";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      actions.append(link);
    } else if (interactive.type === "location_request_message") {
      const share = el("button", "reply-button", "📍 Send location");
      share.type = "button";
      share.addEventListener("click", () => $("location-dialog").showModal());
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
    dialog.showModal();
  }

  function summary(payload) {
    const type = payload.type;
    const part = payload[type] || {};
    if (type === "text") return part.body;
    if (type === "interactive") return (part.body && part.body.text) || "menu";
    if (type === "location") return `📍 ${part.name || "Location"}`;
    if (part.caption) return part.caption;
    return { image: "📷 Photo", video: "🎥 Video", audio: "🎵 Audio", document: `📄 ${part.filename || "Document"}`, sticker: "Sticker" }[type] || type;
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
      text = `📍 ${part.name || "Location"}`;
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
    ticks.textContent = "✓✓";
    ticks.className = state === "read" ? "ticks read" : "ticks";
    ticks.title = state;
  }

  function showTyping() {
    $("typing").hidden = false;
    $("bot-status").textContent = "typing…";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 25000); // WhatsApp drops it after 25 s
    scrollDown();
  }

  function hideTyping() {
    $("typing").hidden = true;
    $("bot-status").textContent = "online";
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

  function reset() {
    list.replaceChildren();
    bubbles.clear();
    texts.clear();
    hideTyping();
    note("Messages go to your bot through its real webhook, as Meta would send them.");
  }

  // -- talking to the server -------------------------------------------------------------

  async function poll() {
    for (;;) {
      let delay = 0;
      try {
        const response = await fetch(`${api}/events?after=${last}&epoch=${encodeURIComponent(epoch)}`, { cache: "no-store" });
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
        if (data.events.length && atBottom) scrollDown();
        delay = data.poll_ms || 0;
      } catch (error) {
        delay = 2000;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async function post(path, body) {
    body.headers = Object.assign({ "X-Simulator-Page": "1" }, body.headers || {});
    const response = await fetch(`${api}/${path}`, body);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  async function send(message) {
    try {
      await post("messages", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(message) });
    } catch (error) {
      notice(`Not sent: ${error.message}`);
    }
  }

  async function sendFile(file, caption) {
    if (file.size > config.maxUpload) {
      notice("That file is too large for WhatsApp.");
      return;
    }
    const form = new FormData();
    form.append("file", file);
    if (caption) form.append("caption", caption);
    try {
      await post("media", { method: "POST", body: form });
    } catch (error) {
      notice(`Not sent: ${error.message}`);
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

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ type: "text", text });
  });
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (!file) return;
    const caption = $("text").value.trim();
    $("text").value = "";
    $("file").value = "";
    sendFile(file, caption);
  });
  $("share-location").addEventListener("click", () => $("location-dialog").showModal());
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
    if (target && target.dataset.id) send({ type: "reaction", message_id: target.dataset.id, emoji: "👍" });
  });
  $("clear").addEventListener("click", () => post("clear", { method: "POST" }).catch((error) => notice(error.message)));
  document.addEventListener("visibilitychange", scheduleSeen);

  reset();
  poll();
})();
