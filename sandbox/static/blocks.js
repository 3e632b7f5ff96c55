// Renders Block Kit blocks to DOM nodes; buttons call back into the page, inputs stay collectable.
"use strict";

(function () {
  const M = () => window.Mrkdwn;

  function el(tag, className, html) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (html !== undefined) node.innerHTML = html;
    return node;
  }

  function button(element, blockId, ctx) {
    const node = el("button", "bk-button" + (element.style ? " " + element.style : ""),
      M().textObject(element.text, ctx));
    node.type = "button";
    node.dataset.testid = "button-" + element.action_id;
    node.dataset.actionId = element.action_id;
    node.dataset.blockId = blockId;
    if (element.value !== undefined) node.dataset.value = element.value;
    if (element.url) node.title = element.url;
    node.addEventListener("click", () => ctx.onButton && ctx.onButton(node, blockId, element));
    return node;
  }

  function option(value, text) {
    const node = document.createElement("option");
    node.value = value;
    node.textContent = text;
    return node;
  }

  // Every select starts with an empty choice showing the placeholder, as Slack's do.
  function selectWith(element, fallbackPlaceholder, choices, initial) {
    const node = el("select", "bk-select");
    node.appendChild(option("", element.placeholder ? element.placeholder.text : fallbackPlaceholder));
    for (const choice of choices) node.appendChild(choice);
    if (initial) node.value = initial;
    return node;
  }

  function select(element) {
    const options = (element.options || []).concat(
      ...(element.option_groups || []).map((g) => g.options || []));
    const choices = options.map((opt) => option(opt.value, opt.text ? opt.text.text : opt.value));
    return selectWith(element, "Select an option", choices,
      element.initial_option && element.initial_option.value);
  }

  function users(element, ctx) {
    const choices = Object.values(ctx.users).map(
      (user) => option(user.id, `${user.real_name} (@${user.name})`));
    return selectWith(element, "Select a person", choices, element.initial_user);
  }

  function interactiveOther(element, ctx) {
    // Elements the page cannot operate yet are shown, not hidden, so the layout stays honest.
    const label = element.placeholder ? element.placeholder.text : element.type;
    return el("span", "bk-unsupported", M().plain(label));
  }

  function accessory(element, blockId, ctx) {
    if (element.type === "button") return button(element, blockId, ctx);
    if (element.type === "image") {
      const img = el("img", "bk-accessory-image");
      img.src = element.image_url || "";
      img.alt = element.alt_text || "";
      return img;
    }
    return interactiveOther(element, ctx);
  }

  function inputControl(element, ctx) {
    let node;
    switch (element.type) {
      case "plain_text_input":
      case "email_text_input":
      case "url_text_input":
      case "number_input":
        if (element.multiline) {
          node = el("textarea", "bk-input");
          node.rows = 4;
        } else {
          node = el("input", "bk-input");
          node.type = "text";
        }
        if (element.placeholder) node.placeholder = element.placeholder.text;
        if (element.initial_value) node.value = element.initial_value;
        break;
      case "static_select":
      case "radio_buttons":
        node = select(element);
        break;
      case "users_select":
        node = users(element, ctx);
        break;
      case "datepicker":
        node = el("input", "bk-input");
        node.type = "date";
        if (element.initial_date) node.value = element.initial_date;
        break;
      default:
        return interactiveOther(element, ctx);
    }
    node.dataset.testid = "modal-input";
    node.dataset.actionId = element.action_id;
    node.dataset.inputType = element.type;
    return node;
  }

  function input(block, ctx) {
    const wrap = el("div", "bk-input-block");
    wrap.dataset.blockId = block.block_id;
    const label = el("label", "bk-label", M().plain(block.label && block.label.text));
    if (block.optional) label.appendChild(el("span", "bk-optional", " (optional)"));
    wrap.appendChild(label);
    const control = inputControl(block.element, ctx);
    control.dataset.blockId = block.block_id;
    wrap.appendChild(control);
    if (block.hint) wrap.appendChild(el("div", "bk-hint", M().plain(block.hint.text)));
    const error = ctx.errors && ctx.errors[block.block_id];
    if (error) {
      wrap.classList.add("has-error");
      const node = el("div", "bk-error", M().plain(error));
      node.dataset.testid = "modal-error";
      wrap.appendChild(node);
    }
    return wrap;
  }

  function richText(block, ctx) {
    const parts = [];
    const walk = (items) => {
      for (const item of items || []) {
        if (item.type === "text") {
          let html = M().escapeHtml(item.text || "");
          const s = item.style || {};
          if (s.code) html = `<code>${html}</code>`;
          if (s.bold) html = `<b>${html}</b>`;
          if (s.italic) html = `<i>${html}</i>`;
          if (s.strike) html = `<s>${html}</s>`;
          parts.push(html.replace(/\n/g, "<br>"));
        } else if (item.type === "link") {
          parts.push(M().render(`<${item.url}|${item.text || item.url}>`, ctx));
        } else if (item.type === "user") {
          parts.push(M().render(`<@${item.user_id}>`, ctx));
        } else if (item.type === "usergroup") {
          parts.push(M().render(`<!subteam^${item.usergroup_id}>`, ctx));
        } else if (item.type === "emoji") {
          parts.push(M().render(`:${item.name}:`, ctx));
        } else if (item.elements) {
          walk(item.elements);
          parts.push("<br>");
        }
      }
    };
    walk(block.elements);
    return el("div", "bk-section-text", parts.join(""));
  }

  function block(b, ctx) {
    switch (b.type) {
      case "header":
        return el("div", "bk-header", M().plain(b.text && b.text.text, b.text && b.text.emoji));
      case "divider":
        return el("hr", "bk-divider");
      case "section": {
        const node = el("div", "bk-section");
        const body = el("div", "bk-section-body");
        if (b.text) body.appendChild(el("div", "bk-section-text", M().textObject(b.text, ctx)));
        if (b.fields) {
          const grid = el("div", "bk-fields");
          for (const f of b.fields) grid.appendChild(el("div", "bk-field", M().textObject(f, ctx)));
          body.appendChild(grid);
        }
        node.appendChild(body);
        if (b.accessory) node.appendChild(accessory(b.accessory, b.block_id, ctx));
        return node;
      }
      case "context": {
        const node = el("div", "bk-context");
        for (const item of b.elements || []) {
          if (item.type === "image") {
            const img = el("img", "bk-context-image");
            img.src = item.image_url || "";
            img.alt = item.alt_text || "";
            node.appendChild(img);
          } else {
            node.appendChild(el("span", "bk-context-text", M().textObject(item, ctx)));
          }
        }
        return node;
      }
      case "actions": {
        const node = el("div", "bk-actions");
        for (const item of b.elements || []) {
          node.appendChild(item.type === "button" ? button(item, b.block_id, ctx)
            : interactiveOther(item, ctx));
        }
        return node;
      }
      case "image": {
        const node = el("figure", "bk-image");
        if (b.title) node.appendChild(el("figcaption", "", M().plain(b.title.text)));
        const img = el("img");
        img.src = b.image_url || "";
        img.alt = b.alt_text || "";
        node.appendChild(img);
        return node;
      }
      case "input":
        return input(b, ctx);
      case "rich_text":
        return richText(b, ctx);
      case "markdown":
        return el("div", "bk-section-text", M().render(b.text, ctx));
      default:
        return el("div", "bk-unsupported", `[${M().escapeHtml(b.type)} block]`);
    }
  }

  function render(blocks, ctx) {
    const wrap = el("div", "bk");
    for (const b of blocks || []) {
      const node = block(b, ctx);
      if (b.block_id) node.dataset.blockId = b.block_id;
      wrap.appendChild(node);
    }
    return wrap;
  }

  // {block_id: {action_id: value}}, the shape /ui/submit_view takes.
  function collectValues(container) {
    const values = {};
    for (const node of container.querySelectorAll("[data-testid='modal-input']")) {
      const blockId = node.dataset.blockId;
      values[blockId] = values[blockId] || {};
      values[blockId][node.dataset.actionId] = node.value === "" ? null : node.value;
    }
    return values;
  }

  window.Blocks = { render, collectValues };
})();
