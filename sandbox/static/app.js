// The sandbox page: one person's view of the workspace, kept live through /ui/stream.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const page = {
    user: params.get("user") || "",
    channel: params.get("channel") || "",
    tab: params.get("tab") === "home" ? "home" : "channel",
    snapshot: null,
    loading: false,
    again: false,
    modalKey: "",
    localNotices: [],
  };
  const $ = (id) => document.getElementById(id);
  const esc = (text) => window.Mrkdwn.escapeHtml(String(text == null ? "" : text));

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      page.localNotices.push({ id: "local-" + Date.now(), text: data.error || response.statusText });
      render();
    }
    return data;
  }

  function remember() {
    const query = new URLSearchParams({ user: page.user });
    if (page.channel) query.set("channel", page.channel);
    if (page.tab === "home") query.set("tab", "home");
    history.replaceState(null, "", "?" + query.toString());
  }

  async function refresh() {
    if (page.loading) {
      page.again = true;
      return;
    }
    page.loading = true;
    try {
      const query = new URLSearchParams({ user: page.user, channel: page.channel });
      const response = await fetch("/ui/state?" + query.toString());
      if (response.ok) {
        page.snapshot = await response.json();
        // The server falls back to a default person and channel when the URL names none.
        page.user = page.snapshot.user;
        page.channel = page.snapshot.channel;
        remember();
        render();
      }
    } finally {
      page.loading = false;
      if (page.again) {
        page.again = false;
        refresh();
      }
    }
  }

  function context(extra) {
    const snap = page.snapshot;
    const users = {};
    for (const u of snap.users) users[u.id] = u;
    users[snap.bot.user_id] = { id: snap.bot.user_id, name: snap.bot.display_name, real_name: snap.bot.display_name };
    const groups = {};
    for (const g of snap.groups) groups[g.id] = g;
    const channels = {};
    for (const c of snap.channels) channels[c.id] = c;
    return Object.assign({ users, groups, channels }, extra || {});
  }

  function initials(name) {
    return name.split(/\s+/).map((p) => p[0] || "").join("").slice(0, 2).toUpperCase();
  }

  function tsTime(ts) {
    const date = new Date(Number(String(ts).split(".")[0]) * 1000);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // ---- sidebar -------------------------------------------------------------------------

  function renderSidebar() {
    const snap = page.snapshot;
    $("user-switcher").innerHTML = snap.users.map((u) =>
      `<option value="${esc(u.id)}"${u.id === page.user ? " selected" : ""}>${esc(u.real_name)} (@${esc(u.name)})${u.groups.length ? " · " + esc(u.groups.join(", ")) : ""}</option>`
    ).join("");
    const me = snap.users.find((u) => u.id === page.user);
    $("me").innerHTML = me ? `
      <div class="me-row"><span class="avatar small">${esc(initials(me.real_name))}</span>
      <div><div class="me-name">${esc(me.real_name)}</div><div class="me-title">${esc(me.title)}</div></div></div>
      <div class="me-groups" data-testid="user-groups">${me.groups.map((g) => `<span class="chip">@${esc(g)}</span>`).join("") || '<span class="muted">no groups</span>'}</div>` : "";
    $("channel-list").innerHTML = snap.channels.filter((c) => !c.is_im).map((c) => `
      <li><a href="#" class="nav-item${page.tab === "channel" && c.id === page.channel ? " active" : ""}"
        data-channel="${esc(c.id)}" data-testid="channel-${esc(c.name)}"><span class="hash">#</span>${esc(c.name)}</a></li>`
    ).join("");
    const dm = snap.channels.find((c) => c.is_im);
    $("nav-dm").classList.toggle("active", page.tab === "channel" && dm && dm.id === page.channel);
    $("nav-dm").dataset.channel = dm ? dm.id : "";
    $("nav-home").classList.toggle("active", page.tab === "home");
  }

  // ---- messages ------------------------------------------------------------------------

  function author(message, ctx) {
    if (message.user === "USLACKBOT") return { name: "Slackbot", app: false, avatar: "S", cls: "slackbot" };
    if (message.bot_id) return { name: page.snapshot.bot.display_name, app: true, avatar: "A", cls: "bot" };
    const user = ctx.users[message.user];
    const name = user ? user.real_name : message.user;
    return { name, app: false, avatar: initials(name), cls: "person" };
  }

  function messageNode(message, ctx, isReply) {
    const who = author(message, ctx);
    const node = document.createElement("article");
    node.className = "message" + (message.is_ephemeral ? " ephemeral" : "") + (isReply ? " reply" : "");
    node.dataset.testid = message.is_ephemeral ? "ephemeral" : "message";
    node.dataset.ts = message.ts;
    node.innerHTML = `
      <div class="avatar ${who.cls}">${esc(who.avatar)}</div>
      <div class="message-body">
        <div class="message-meta"><span class="author">${esc(who.name)}</span>${who.app ? '<span class="app-badge">APP</span>' : ""}
        <span class="time" title="${esc(message.ts)}">${esc(tsTime(message.ts))}</span>
        ${message.is_ephemeral ? '<span class="only-you">Only visible to you</span>' : ""}</div>
      </div>`;
    const body = node.querySelector(".message-body");
    const onButton = (button, blockId, element) => clickMessage(button, message, blockId, element);
    if (message.blocks && message.blocks.length) {
      body.appendChild(window.Blocks.render(message.blocks, context({ onButton })));
    } else {
      const text = document.createElement("div");
      text.className = "message-text";
      text.innerHTML = window.Mrkdwn.render(message.text, ctx);
      body.appendChild(text);
    }
    for (const attachment of message.attachments || []) {
      const wrap = document.createElement("div");
      wrap.className = "attachment";
      if (attachment.color) wrap.style.borderLeftColor = attachment.color.startsWith("#") ? attachment.color : "#" + attachment.color;
      if (attachment.blocks) wrap.appendChild(window.Blocks.render(attachment.blocks, context({ onButton })));
      else wrap.innerHTML = window.Mrkdwn.render(attachment.text || attachment.fallback || "", ctx);
      body.appendChild(wrap);
    }
    if (message.reply_count && !isReply) {
      const replies = document.createElement("div");
      replies.className = "reply-count";
      replies.textContent = `${message.reply_count} ${message.reply_count === 1 ? "reply" : "replies"}`;
      body.appendChild(replies);
    }
    return node;
  }

  function renderMessages() {
    const box = $("messages");
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const snap = page.snapshot;
    const ctx = context();
    const all = snap.messages.concat(snap.ephemerals).sort((a, b) => Number(a.ts) - Number(b.ts));
    const replies = {};
    for (const m of all) {
      if (m.thread_ts && m.thread_ts !== m.ts) (replies[m.thread_ts] = replies[m.thread_ts] || []).push(m);
    }
    box.innerHTML = "";
    if (!all.length) {
      box.innerHTML = `<div class="empty">No messages yet. The app posts here with <code>chat.postMessage</code>.</div>`;
    }
    for (const m of all) {
      if (m.thread_ts && m.thread_ts !== m.ts) continue;
      box.appendChild(messageNode(m, ctx, false));
      for (const r of replies[m.ts] || []) box.appendChild(messageNode(r, ctx, true));
    }
    if (stick || !page.scrolled) {
      box.scrollTop = box.scrollHeight;
      page.scrolled = true;
    }
  }

  function renderHome() {
    const box = $("home");
    const home = page.snapshot.home;
    const shown = home ? JSON.stringify(home.blocks) : "";
    // An app answers a click on its Home by publishing the Home again, its notice at the top:
    // show that answer instead of leaving it above the button that was clicked far down.
    const answered = page.homeClicked && shown !== page.homeShown;
    page.homeShown = shown;
    box.innerHTML = "";
    if (!home) {
      box.innerHTML = `<div class="empty">The app has not published a Home tab for you yet.</div>`;
      return;
    }
    const onButton = (button, blockId, element) => clickView(button, home.id, blockId, element);
    box.appendChild(window.Blocks.render(home.blocks, context({ onButton })));
    if (answered) {
      box.scrollTop = 0;
      page.homeClicked = false;
    }
  }

  // ---- modal ---------------------------------------------------------------------------

  function renderModal() {
    const layer = $("modal-layer");
    const modal = page.snapshot.modal;
    if (!modal) {
      layer.classList.add("hidden");
      layer.innerHTML = "";
      page.modalKey = "";
      return;
    }
    const key = modal.id + "|" + modal.hash + "|" + JSON.stringify(modal.errors);
    if (key === page.modalKey) return;
    // Re-rendering the same view (say, to show errors) must keep what the person typed.
    const typed = page.modalKey.startsWith(modal.id + "|") ? window.Blocks.collectValues(layer) : null;
    page.modalKey = key;
    layer.classList.remove("hidden");
    layer.innerHTML = `
      <div class="modal" data-testid="modal" data-view-id="${esc(modal.id)}" role="dialog" aria-modal="true">
        <div class="modal-head">
          <div class="modal-title" data-testid="modal-title">${window.Mrkdwn.plain(modal.title && modal.title.text)}</div>
          <button type="button" class="modal-x" data-testid="modal-x" title="Close">×</button>
        </div>
        <div class="modal-body"></div>
        <div class="modal-foot">
          <button type="button" class="bk-button" data-testid="modal-cancel">${esc(modal.close ? modal.close.text : "Cancel")}</button>
          ${modal.submit ? `<button type="button" class="bk-button primary" data-testid="modal-submit">${esc(modal.submit.text)}</button>` : ""}
        </div>
      </div>`;
    const onButton = (button, blockId, element) => clickView(button, modal.id, blockId, element);
    layer.querySelector(".modal-body").appendChild(
      window.Blocks.render(modal.blocks, context({ onButton, errors: modal.errors })));
    if (typed) {
      for (const input of layer.querySelectorAll("[data-testid='modal-input']")) {
        const value = (typed[input.dataset.blockId] || {})[input.dataset.actionId];
        if (value != null) input.value = value;
      }
    }
    const close = () => post("/ui/close_view", { user_id: page.user, view_id: modal.id });
    layer.querySelector("[data-testid='modal-x']").addEventListener("click", close);
    layer.querySelector("[data-testid='modal-cancel']").addEventListener("click", close);
    const submit = layer.querySelector("[data-testid='modal-submit']");
    if (submit) {
      submit.addEventListener("click", async () => {
        submit.disabled = true;
        submit.classList.add("busy");
        try {
          await post("/ui/submit_view", {
            user_id: page.user, view_id: modal.id, values: window.Blocks.collectValues(layer),
          });
        } finally {
          submit.disabled = false;
          submit.classList.remove("busy");
        }
      });
    }
  }

  // ---- confirm dialogs and clicks ---------------------------------------------------------

  function confirmFirst(element) {
    if (!element.confirm) return Promise.resolve(true);
    const c = element.confirm;
    const layer = $("confirm-layer");
    layer.classList.remove("hidden");
    layer.innerHTML = `
      <div class="modal confirm" data-testid="confirm-dialog" role="alertdialog">
        <div class="modal-head"><div class="modal-title">${window.Mrkdwn.plain(c.title && c.title.text)}</div></div>
        <div class="modal-body">${window.Mrkdwn.textObject(c.text, context())}</div>
        <div class="modal-foot">
          <button type="button" class="bk-button" data-testid="confirm-deny">${esc(c.deny ? c.deny.text : "Cancel")}</button>
          <button type="button" class="bk-button ${c.style === "danger" ? "danger" : "primary"}" data-testid="confirm-ok">${esc(c.confirm ? c.confirm.text : "OK")}</button>
        </div>
      </div>`;
    return new Promise((resolve) => {
      const done = (answer) => {
        layer.classList.add("hidden");
        layer.innerHTML = "";
        resolve(answer);
      };
      layer.querySelector("[data-testid='confirm-ok']").addEventListener("click", () => done(true));
      layer.querySelector("[data-testid='confirm-deny']").addEventListener("click", () => done(false));
    });
  }

  async function press(button, element, request) {
    if (!(await confirmFirst(element))) return;
    if (element.url) window.open(element.url, "_blank", "noopener");
    button.disabled = true;
    button.classList.add("busy");
    try {
      await request();
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  function clickMessage(button, message, blockId, element) {
    return press(button, element, () => post("/ui/click", {
      user_id: page.user,
      channel_id: page.channel,
      message_ts: message.ts,
      action_id: element.action_id,
      block_id: blockId,
      value: element.value,
    }));
  }

  function clickView(button, viewId, blockId, element) {
    return press(button, element, () => {
      if (page.snapshot.home && viewId === page.snapshot.home.id) page.homeClicked = true;
      return post("/ui/click_view", {
        user_id: page.user, view_id: viewId, action_id: element.action_id, block_id: blockId, value: element.value,
      });
    });
  }

  // ---- header, notices, traffic ----------------------------------------------------------------

  function renderHeader() {
    const snap = page.snapshot;
    const channel = snap.channels.find((c) => c.id === page.channel);
    if (page.tab === "home") {
      $("channel-title").textContent = `${snap.bot.display_name} · Home`;
      $("channel-topic").textContent = "Your App Home tab";
    } else if (channel && channel.is_im) {
      $("channel-title").textContent = `${snap.bot.display_name} · Messages`;
      $("channel-topic").textContent = "Direct messages with the app";
    } else {
      $("channel-title").textContent = channel ? "# " + channel.name : "";
      $("channel-topic").textContent = channel ? channel.topic : "";
    }
    const name = channel && !channel.is_im ? "#" + channel.name : snap.bot.display_name;
    $("slash-input").placeholder = `Message ${name}, or a slash command like /approvals list`;
  }

  function renderNotices() {
    const notices = page.snapshot.notices.concat(page.localNotices);
    $("notices").innerHTML = notices.map((n) => `
      <div class="notice" data-testid="notice"><span class="notice-icon">⚠️</span>
        <span class="notice-text">${esc(n.text)}</span>
        <button type="button" class="notice-x" data-notice="${esc(n.id)}" title="Dismiss">×</button></div>`).join("");
  }

  function renderTraffic() {
    const snap = page.snapshot;
    $("request-url").innerHTML = snap.request_url
      ? `→ <code>${esc(snap.request_url)}</code>` : `<span class="bad">no request URL set</span>`;
    $("deliveries").innerHTML = snap.deliveries.slice().reverse().map((d) => `
      <li class="delivery ${d.ok ? "ok" : "bad"}" data-testid="delivery">
        <span class="delivery-kind">${esc(d.kind)}</span>
        <span class="delivery-status">${esc(d.status == null ? d.error : d.status)}</span>
        <span class="delivery-latency">${esc(Math.round(d.latency_ms))} ms</span>
      </li>`).join("") || `<li class="muted">nothing sent yet</li>`;
  }

  function render() {
    const snap = page.snapshot;
    if (!snap) return;
    renderSidebar();
    renderHeader();
    renderNotices();
    const home = page.tab === "home";
    $("messages").classList.toggle("hidden", home);
    $("home").classList.toggle("hidden", !home);
    $("composer").classList.toggle("hidden", home);
    if (home) renderHome(); else renderMessages();
    renderModal();
    renderTraffic();
  }

  // ---- wiring ------------------------------------------------------------------------------

  function openChannel(id) {
    page.tab = "channel";
    page.channel = id;
    page.scrolled = false;
    remember();
    refresh();
  }

  async function openHome() {
    page.tab = "home";
    remember();
    render();
    await post("/ui/open_home", { user_id: page.user });
    refresh();
  }

  function wire() {
    $("user-switcher").addEventListener("change", (e) => {
      page.user = e.target.value;
      page.modalKey = "";
      page.localNotices = [];
      remember();
      if (page.tab === "home") openHome(); else refresh();
    });
    $("channel-list").addEventListener("click", (e) => {
      const link = e.target.closest("[data-channel]");
      if (!link) return;
      e.preventDefault();
      openChannel(link.dataset.channel);
    });
    $("nav-dm").addEventListener("click", (e) => {
      e.preventDefault();
      if (e.currentTarget.dataset.channel) openChannel(e.currentTarget.dataset.channel);
    });
    $("nav-home").addEventListener("click", (e) => {
      e.preventDefault();
      openHome();
    });
    $("notices").addEventListener("click", (e) => {
      const x = e.target.closest("[data-notice]");
      if (!x) return;
      const id = x.dataset.notice;
      if (id.startsWith("local-")) {
        page.localNotices = page.localNotices.filter((n) => n.id !== id);
        render();
      } else {
        post("/ui/dismiss_notice", { id: Number(id) });
      }
    });
    $("composer").addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = $("slash-input");
      const text = input.value.trim();
      if (!text || !page.channel) return;
      input.value = "";
      input.disabled = true;
      try {
        await post("/ui/slash", { user_id: page.user, channel_id: page.channel, text });
      } finally {
        input.disabled = false;
        input.focus();
      }
    });
  }

  function listen() {
    const status = $("connection");
    const source = new EventSource("/ui/stream");
    source.addEventListener("change", () => refresh());
    source.onopen = () => { status.textContent = "live"; status.className = "connection live"; };
    source.onerror = () => { status.textContent = "reconnecting…"; status.className = "connection"; };
  }

  async function start() {
    wire();
    await refresh();
    if (page.tab === "home") await openHome();
    listen();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
