// The sandbox page: one person's view of the workspace, kept live through /ui/stream.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const page = {
    user: params.get("user") || "",
    channel: params.get("channel") || "",
    tab: ["home", "inbox"].includes(params.get("tab")) ? params.get("tab") : "channel",
    mailId: Number(params.get("mail")) || null,
    mailSeen: 0, // the newest mail id shown while the Inbox was open; newer ones count as new
    mailListKey: "",
    mailShown: null, // the id whose full mail the reader shows
    mailView: "html",
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
    if (page.tab !== "channel") query.set("tab", page.tab);
    if (page.tab === "inbox" && page.mailId) query.set("mail", String(page.mailId));
    history.replaceState(null, "", "?" + query.toString());
  }

  async function refresh() {
    if (page.loading) {
      page.again = true;
      return;
    }
    page.loading = true;
    try {
      const asked = { user: page.user, channel: page.channel };
      const query = new URLSearchParams(asked);
      const response = await fetch("/ui/state?" + query.toString());
      if (response.ok) {
        const snapshot = await response.json();
        if (page.user !== asked.user || page.channel !== asked.channel) {
          // Another person or channel was chosen while this was on its way: ask for that one.
          page.again = true;
          return;
        }
        page.snapshot = snapshot;
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
    $("nav-inbox").classList.toggle("active", page.tab === "inbox");
    const mails = snap.inbox.mails;
    if (page.tab === "inbox" && mails.length) page.mailSeen = Math.max(page.mailSeen, mails[mails.length - 1].id);
    const fresh = mails.filter((m) => m.id > page.mailSeen).length;
    const badge = $("inbox-new");
    badge.classList.toggle("hidden", !fresh);
    badge.textContent = fresh ? String(fresh) : "";
    badge.setAttribute("aria-label", `${fresh} new`);
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

  // ---- inbox -----------------------------------------------------------------------------

  // What the mail's own HTML may do inside the frame: no scripts (the sandbox attribute), no
  // requests out (this policy: a mail's remote images would be trackers), and links open in a
  // new tab, outside the frame's sandbox, so the approval page they lead to works as in a real
  // browser tab while this Inbox and the channel stay where they were.
  const MAIL_FRAME_HEAD = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    + 'style-src \'unsafe-inline\'; img-src data:"><base target="_blank">';
  const URL_IN_TEXT = /https?:\/\/[^\s<>"']+/g;

  function mailTime(seconds) {
    return new Date(seconds * 1000).toLocaleString([], {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function linkedText(text) {
    // Each piece is escaped on its own, so a URL never swallows an escaped "<" or quote.
    let html = "";
    let last = 0;
    for (const match of text.matchAll(URL_IN_TEXT)) {
      const url = match[0].replace(/[.,;:!?)\]}]+$/, "");
      html += esc(text.slice(last, match.index));
      html += `<a href="${esc(url)}" target="_blank" rel="noopener">${esc(url)}</a>`;
      last = match.index + url.length;
    }
    return html + esc(text.slice(last));
  }

  function renderMailList() {
    const inbox = page.snapshot.inbox;
    const mails = inbox.mails.slice().reverse();
    $("inbox-smtp").innerHTML = inbox.smtp_url
      ? `SMTP <code>${esc(inbox.smtp_url)}</code>` : `<span class="bad">no mail catcher running</span>`;
    const key = JSON.stringify([inbox.smtp_url, page.mailId, mails.map((m) => m.id)]);
    if (key === page.mailListKey) return;
    page.mailListKey = key;
    const list = $("mail-list");
    const focused = document.activeElement && document.activeElement.dataset.mail;
    list.innerHTML = mails.map((m) => `
      <li><button type="button" class="mail-item${m.id === page.mailId ? " active" : ""}" data-mail="${m.id}"
          data-testid="mail-item" ${m.id === page.mailId ? 'aria-current="true"' : ""}>
        <span class="mail-item-top"><span class="mail-from">${esc(m.from.join(", "))}</span>
        <span class="mail-time">${esc(mailTime(m.received_at))}</span></span>
        <span class="mail-subject">${esc(m.subject || "(no subject)")}</span>
        <span class="mail-preview">${esc(m.preview)}</span>
      </button></li>`).join("")
      || `<li class="empty">No mail yet.${inbox.smtp_url ? ` Mail sent to <code>${esc(inbox.smtp_url)}</code> shows here.` : ""}</li>`;
    if (focused) {
      const again = list.querySelector(`[data-mail="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  async function renderMailReader() {
    const reader = $("mail-reader");
    const known = page.snapshot.inbox.mails.some((m) => m.id === page.mailId);
    $("inbox").classList.toggle("reading", Boolean(page.mailId && known));
    if (!page.mailId || !known) {
      page.mailShown = null;
      reader.innerHTML = `<div class="empty">${page.mailId ? "That mail is no longer in the Inbox." : "Choose a mail to read it."}</div>`;
      return;
    }
    if (page.mailShown === page.mailId) return;
    const wanted = page.mailId;
    page.mailShown = wanted;
    const response = await fetch(`/sandbox/mails/${wanted}`);
    if (page.mailId !== wanted) return; // another mail was opened meanwhile
    if (!response.ok) {
      page.mailShown = null;
      reader.innerHTML = `<div class="empty">That mail is no longer in the Inbox.</div>`;
      return;
    }
    showMail((await response.json()).mail);
  }

  function showMail(mail) {
    const reader = $("mail-reader");
    const view = mail.html ? page.mailView : "text";
    const row = (name, values) => values.length ? `<dt>${name}</dt><dd>${esc(values.join(", "))}</dd>` : "";
    reader.innerHTML = `
      <header class="mail-head">
        <button type="button" class="mail-back bk-button small" data-testid="mail-back">← All mail</button>
        <h2 id="mail-subject" class="mail-title" tabindex="-1" data-testid="mail-subject">${esc(mail.subject || "(no subject)")}</h2>
        <dl class="mail-meta">
          ${row("From", mail.from)}${row("To", mail.to.length ? mail.to : mail.envelope_to)}${row("Cc", mail.cc)}
          ${row("Date", [mail.date || mailTime(mail.received_at)])}
        </dl>
        <div class="mail-views" role="group" aria-label="Show the mail as">
          ${mail.html ? `<button type="button" class="bk-button small" data-view="html" data-testid="mail-view-html" aria-pressed="${view === "html"}">HTML</button>` : ""}
          <button type="button" class="bk-button small" data-view="text" data-testid="mail-view-text" aria-pressed="${view === "text"}">Plain text</button>
          <a class="mail-source" href="/sandbox/mails/${mail.id}/raw" target="_blank" rel="noopener">Source</a>
        </div>
      </header>
      <iframe class="mail-html${view === "html" ? "" : " hidden"}" data-testid="mail-html"
        sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer"
        title="${esc("Mail: " + (mail.subject || "(no subject)"))}"></iframe>
      <pre class="mail-text${view === "text" ? "" : " hidden"}" data-testid="mail-text" tabindex="0"
        aria-label="Plain text of the mail">${mail.text ? linkedText(mail.text) : '<span class="muted">This mail has no plain-text part.</span>'}</pre>
      <p class="mail-note">Links open in a new tab; this Inbox stays here.</p>
      ${mail.links.length ? `<h3 class="mail-links-title" id="mail-links-title">Links in this mail</h3>
      <ul class="mail-links" aria-labelledby="mail-links-title" data-testid="mail-links">${mail.links.map((u) =>
        `<li><a href="${esc(u)}" target="_blank" rel="noopener">${esc(u)}</a></li>`).join("")}</ul>` : ""}`;
    if (mail.html) reader.querySelector("iframe").srcdoc = MAIL_FRAME_HEAD + mail.html;
    if (page.mailFocus) {
      page.mailFocus = false;
      reader.querySelector("#mail-subject").focus();
    }
  }

  function openMail(id) {
    page.mailId = id;
    page.mailFocus = true; // a person who chose a mail goes on reading it, with the keyboard too
    remember();
    render();
  }

  function renderInbox() {
    renderMailList();
    renderMailReader();
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
    } else if (page.tab === "inbox") {
      $("channel-title").textContent = "Inbox";
      $("channel-topic").textContent = "Every mail sent to the sandbox's mail catcher, whoever it is to";
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
    const inbox = page.tab === "inbox";
    $("messages").classList.toggle("hidden", home || inbox);
    $("home").classList.toggle("hidden", !home);
    $("inbox").classList.toggle("hidden", !inbox);
    $("composer").classList.toggle("hidden", home || inbox);
    if (home) renderHome(); else if (inbox) renderInbox(); else renderMessages();
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

  function openInbox() {
    page.tab = "inbox";
    page.mailListKey = "";
    page.mailShown = null;
    remember();
    render();
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
    $("nav-inbox").addEventListener("click", (e) => {
      e.preventDefault();
      openInbox();
    });
    $("mail-list").addEventListener("click", (e) => {
      const item = e.target.closest("[data-mail]");
      if (item) openMail(Number(item.dataset.mail));
    });
    $("mail-reader").addEventListener("click", (e) => {
      const choice = e.target.closest("[data-view]");
      if (choice) {
        page.mailView = choice.dataset.view;
        for (const b of $("mail-reader").querySelectorAll("[data-view]")) {
          b.setAttribute("aria-pressed", String(b === choice));
        }
        $("mail-reader").querySelector(".mail-html").classList.toggle("hidden", page.mailView !== "html");
        $("mail-reader").querySelector(".mail-text").classList.toggle("hidden", page.mailView !== "text");
      } else if (e.target.closest("[data-testid='mail-back']")) {
        const id = page.mailId;
        page.mailId = null;
        remember();
        render();
        const item = $("mail-list").querySelector(`[data-mail="${id}"]`);
        if (item) item.focus();
      }
    });
    $("inbox-clear").addEventListener("click", async () => {
      await fetch("/sandbox/mails", { method: "DELETE" });
      refresh();
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
