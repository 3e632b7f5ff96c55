// Renders Slack mrkdwn (and plain_text) to safe HTML: mentions, links, bold/italic/strike, code.
"use strict";

(function () {
  const EMOJI = {
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", no_entry: "⛔", warning: "⚠️",
    hourglass: "⌛", hourglass_flowing_sand: "⏳", tada: "🎉", rocket: "🚀", lock: "🔒",
    bell: "🔔", memo: "📝", moneybag: "💰", clock1: "🕐", alarm_clock: "⏰", eyes: "👀",
    thumbsup: "👍", "+1": "👍", thumbsdown: "👎", "-1": "👎", wave: "👋", house: "🏠",
    information_source: "ℹ️", red_circle: "🔴", large_green_circle: "🟢", large_yellow_circle: "🟡",
    ballot_box_with_check: "☑️", stopwatch: "⏱️", construction: "🚧", bust_in_silhouette: "👤",
    busts_in_silhouette: "👥", calendar: "📆", link: "🔗", speech_balloon: "💬", zap: "⚡",
  };

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  // Apps escape &, < and > in message text; undo that before escaping for HTML.
  function unescapeSlack(text) {
    return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function emojify(html) {
    return html.replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);
  }

  function safeUrl(url) {
    return /^(https?:|mailto:)/i.test(url) ? url : "#";
  }

  function special(token, ctx) {
    const [target, label] = splitOnce(token, "|");
    if (target.startsWith("@")) {
      const user = ctx.users[target.slice(1)];
      const name = user ? user.name : (label || target.slice(1));
      return `<span class="mention" data-user="${escapeHtml(target.slice(1))}">@${escapeHtml(name)}</span>`;
    }
    if (target.startsWith("#")) {
      const channel = ctx.channels[target.slice(1)];
      const name = channel ? channel.name : (label || target.slice(1));
      return `<span class="mention">#${escapeHtml(name)}</span>`;
    }
    if (target.startsWith("!subteam^")) {
      const group = ctx.groups[target.slice("!subteam^".length)];
      const handle = group ? "@" + group.handle : (label || "@group");
      return `<span class="mention group">${escapeHtml(handle)}</span>`;
    }
    if (target.startsWith("!date^")) {
      const parts = target.split("^");
      const seconds = Number(parts[1]);
      const shown = Number.isFinite(seconds) ? new Date(seconds * 1000).toLocaleString() : label;
      return `<span class="date">${escapeHtml(shown || label || "")}</span>`;
    }
    if (target.startsWith("!")) {
      return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
    }
    const href = safeUrl(unescapeSlack(target));
    const text = label ? unescapeSlack(label) : unescapeSlack(target);
    return `<a href="${escapeHtml(href)}" target="_blank" rel="noopener">${escapeHtml(text)}</a>`;
  }

  function splitOnce(text, sep) {
    const at = text.indexOf(sep);
    return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
  }

  function styleSpans(html) {
    const edge = "(^|[\\s(>\"'])";
    const end = "(?=$|[\\s).,!?:;<\"'])";
    return html
      .replace(new RegExp(edge + "\\*([^*\\n]+?)\\*" + end, "g"), "$1<b>$2</b>")
      .replace(new RegExp(edge + "_([^_\\n]+?)_" + end, "g"), "$1<i>$2</i>")
      .replace(new RegExp(edge + "~([^~\\n]+?)~" + end, "g"), "$1<s>$2</s>");
  }

  function render(text, ctx) {
    if (!text) return "";
    const held = [];
    const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
    let work = String(text)
      .replace(/```([\s\S]*?)```/g, (m, code) => hold(`<pre>${escapeHtml(unescapeSlack(code))}</pre>`))
      .replace(/`([^`\n]+)`/g, (m, code) => hold(`<code>${escapeHtml(unescapeSlack(code))}</code>`))
      .replace(/<([^<>\n]+)>/g, (m, token) => hold(special(token, ctx)));
    work = emojify(escapeHtml(unescapeSlack(work)));
    work = styleSpans(work);
    // Like Slack, a line starting with ">" is quoted, with or without a space after it.
    work = work.split("\n").map((line) =>
      line.startsWith("&gt;") ? `<blockquote>${line.slice(4).replace(/^ /, "")}</blockquote>` : line
    ).join("<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
    return work.replace(/\u0000(\d+)\u0000/g, (m, i) => held[Number(i)]);
  }

  function plain(text, emoji) {
    const html = escapeHtml(String(text || ""));
    return emoji === false ? html : emojify(html);
  }

  function textObject(obj, ctx) {
    if (!obj) return "";
    return obj.type === "mrkdwn" ? render(obj.text, ctx) : plain(obj.text, obj.emoji);
  }

  window.Mrkdwn = { render, plain, textObject, escapeHtml };
})();
