// The page frame's behaviour (README, "Pages"):
// - under the nav's breakpoint, the "Menu" button opens and closes the nav (Escape or a click elsewhere
//   closes it);
// - every table scrolls sideways inside its own box (a div.table-wrap around it), so that a wide table never
//   scrolls the page; tables that HTMX swaps in later are wrapped too;
// - a box that scrolls sideways (a wrapped table, a code snippet) and holds nothing focusable can be focused,
//   so that a keyboard can scroll it too.
(function () {
  "use strict";
  var SCROLLERS = ".table-wrap, pre";
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  var RESIZE_SETTLE_MS = 150;

  function markScrollers() {
    Array.prototype.forEach.call(document.querySelectorAll(SCROLLERS), function (box) {
      var scrolls = box.scrollWidth > box.clientWidth;
      if (scrolls && !box.hasAttribute("tabindex") && !box.querySelector(FOCUSABLE)) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-focus", "");
      } else if (!scrolls && box.hasAttribute("data-scroll-focus")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-focus");
      }
    });
  }

  function wrapTables(root) {
    if (!root || !root.querySelectorAll) return;
    var tables = root.tagName === "TABLE" ? [root] : root.querySelectorAll("table");
    Array.prototype.forEach.call(tables, function (table) {
      var parent = table.parentNode;
      if (!parent || (parent.classList && parent.classList.contains("table-wrap"))) return;
      var wrap = document.createElement("div");
      wrap.className = "table-wrap";
      parent.insertBefore(wrap, table);
      wrap.appendChild(table);
    });
  }

  function setMenu(bar, open) {
    var button = bar.querySelector(".menu-toggle");
    bar.classList.toggle("open", open);
    if (button) button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function initMenu() {
    var bar = document.getElementById("topbar");
    var button = bar && bar.querySelector(".menu-toggle");
    if (!button) return;
    button.addEventListener("click", function () { setMenu(bar, !bar.classList.contains("open")); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && bar.classList.contains("open")) { setMenu(bar, false); button.focus(); }
    });
    document.addEventListener("click", function (event) {
      if (bar.classList.contains("open") && !bar.contains(event.target)) setMenu(bar, false);
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(markScrollers, RESIZE_SETTLE_MS);
  });
  document.addEventListener("DOMContentLoaded", function () { initMenu(); wrapTables(document.body); markScrollers(); });
  document.addEventListener("htmx:load", function (event) { wrapTables(event.detail && event.detail.elt); markScrollers(); });
})();
