// The live board: subscribes to the project's stream and moves, adds or
// updates cards in place. The page is complete without this script; it
// only keeps it current. No polling: one stream per page, reconnecting
// with back-off from the last cursor it saw.
(() => {
  "use strict";
  const root = document.getElementById("board");
  if (!root) return;
  const project = root.dataset.project;
  const filter = root.dataset.feature || "";
  const filtered = root.dataset.filtered === "true";
  let cursor = root.dataset.cursor || "";
  const live = root.querySelector(".live");
  const notice = document.getElementById("notice");
  const select = document.getElementById("feature");
  if (select) select.addEventListener("change", () => select.form.submit());

  const LANE_OF_RAW = { planned: "planned", doing: "doing", for_review: "for_review", done: "done" };

  function ago(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "";
    const secs = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (secs < 60) return "just now";
    const mins = Math.floor(secs / 60);
    if (mins < 60) return mins + "m ago";
    const hours = Math.floor(mins / 60);
    if (hours < 48) return hours + "h ago";
    return Math.floor(hours / 24) + "d ago";
  }
  function refreshTimes() {
    document.querySelectorAll("time[datetime]").forEach((t) => {
      const text = ago(t.dateTime);
      if (text) t.textContent = text;
    });
  }
  setInterval(refreshTimes, 30000);

  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }
  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function keyOf(card) {
    return (card.feature_slug || "") + "/" + card.wp_id;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function historyHref(card) {
    const params = new URLSearchParams({ wp: card.wp_id });
    if (card.feature_slug) params.set("feature", card.feature_slug);
    return "/projects/" + project + "/history?" + params.toString();
  }
  // Mirrors templates/card.html.
  function renderCard(card) {
    const li = el("li");
    const a = el("a", "card");
    a.href = historyHref(card);
    a.dataset.wp = keyOf(card);
    a.title = card.wp_id + (card.title ? " – " + card.title : "");
    const top = el("div", "top");
    top.append(el("span", "wp", card.wp_id));
    const raw = card.raw_lane;
    if (raw && raw !== card.lane && raw !== "in_progress") {
      const badge = el("span", "badge", raw);
      badge.dataset.raw = raw;
      top.append(badge);
    }
    if (!filtered) top.append(el("span", "feature", card.feature_slug || "(no feature)"));
    a.append(top);
    a.append(el("div", card.title ? "title" : "title untitled", card.title || "Untitled"));
    const foot = el("div", "foot");
    if (card.actor) foot.append(el("span", "actor", card.actor));
    if (card.updated_at) {
      const dot = el("span", "", "·");
      dot.setAttribute("aria-hidden", "true");
      const time = el("time", "", ago(card.updated_at));
      time.dateTime = card.updated_at;
      time.title = card.updated_at;
      foot.append(dot, time);
    }
    a.append(foot);
    li.append(a);
    return li;
  }

  function recount() {
    let total = 0;
    root.querySelectorAll(".column").forEach((column) => {
      const n = column.querySelectorAll(".cards > li").length;
      total += n;
      column.querySelector("[data-count]").textContent = String(n);
    });
    root.querySelector("[data-total]").textContent = String(total);
    const empty = document.getElementById("empty-board");
    if (empty) empty.hidden = total > 0;
  }

  function place(card, flash) {
    if (filter && (card.feature_slug || "") !== filter) return;
    const key = keyOf(card);
    const existing = root.querySelector('a.card[data-wp="' + CSS.escape(key) + '"]');
    if (existing) existing.parentElement.remove();
    const lane = LANE_OF_RAW[card.lane] || "planned";
    const list = root.querySelector('.column[data-lane="' + lane + '"] .cards');
    if (!list) return;
    const li = renderCard(card);
    const after = Array.from(list.children).find((other) => {
      const otherKey = other.firstElementChild.dataset.wp;
      return otherKey > key;
    });
    list.insertBefore(li, after || null);
    if (flash) {
      const a = li.firstElementChild;
      a.classList.add("changed");
      setTimeout(() => a.classList.remove("changed"), 2500);
    }
  }

  async function reloadBoard() {
    showNotice("The live view lost its place; reloading the board…");
    try {
      const response = await fetch("/api/v1/projects/" + project + "/board/", { credentials: "same-origin" });
      if (response.status === 401) return sessionEnded();
      if (!response.ok) throw new Error("HTTP " + response.status);
      const board = await response.json();
      root.querySelectorAll(".cards").forEach((list) => list.replaceChildren());
      for (const feature of board.features) {
        for (const card of feature.work_packages) {
          place(Object.assign({ feature_slug: feature.feature_slug }, card), false);
        }
      }
      cursor = board.cursor;
      recount();
      showNotice("");
    } catch (e) {
      showNotice("Could not reload the board (" + e.message + "); reload the page.");
    }
  }

  function sessionEnded() {
    setLive("down", "Signed out");
    notice.replaceChildren("Your session has ended. ", Object.assign(el("a", "", "Log in again"), { href: "/" }), ".");
    notice.hidden = false;
    stopped = true;
  }

  let source = null;
  let retry = 1000;
  let stopped = false;
  function connect() {
    if (stopped) return;
    const url = "/api/v1/projects/" + project + "/stream/?after=" + encodeURIComponent(cursor);
    source = new EventSource(url);
    source.onopen = () => {
      retry = 1000;
      setLive("live", "Live");
    };
    source.addEventListener("wp", (event) => {
      if (event.lastEventId) cursor = event.lastEventId;
      place(JSON.parse(event.data), true);
      recount();
    });
    source.addEventListener("reload", (event) => {
      if (event.lastEventId) cursor = event.lastEventId;
      reloadBoard();
    });
    source.onerror = async () => {
      source.close();
      setLive("down", "Reconnecting…");
      try {
        const probe = await fetch("/api/v1/projects/" + project + "/board/", { method: "HEAD", credentials: "same-origin" });
        if (probe.status === 401) return sessionEnded();
      } catch (_) {
        // The server is down: keep trying.
      }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  setLive("down", "Connecting…");
  connect();
})();
