/* User Token admin form: preset buttons tick the permission boxes listed in their
   data-permissions attribute (generated server-side from the catalogue). */
"use strict";
(function () {
  function init(root) {
    const boxes = Array.from(root.querySelectorAll('input[type="checkbox"]'));
    const presetButtons = Array.from(root.querySelectorAll("button[data-permissions]"));
    const counter = root.querySelector("[data-permission-count]");

    function update() {
      const ticked = new Set(boxes.filter((box) => box.checked).map((box) => box.value));
      presetButtons.forEach((button) => {
        const codes = button.dataset.permissions.split(/\s+/).filter(Boolean);
        const matches = codes.length === ticked.size && codes.every((code) => ticked.has(code));
        button.setAttribute("aria-pressed", matches ? "true" : "false");
      });
      if (counter) {
        counter.textContent = ticked.size + " of " + boxes.length + " permissions ticked.";
      }
    }

    function tick(codes) {
      boxes.forEach((box) => {
        box.checked = codes.has(box.value);
      });
      update();
    }

    presetButtons.forEach((button) => {
      button.addEventListener("click", () => {
        tick(new Set(button.dataset.permissions.split(/\s+/).filter(Boolean)));
      });
    });
    root.querySelectorAll("[data-permissions-clear]").forEach((button) => {
      button.addEventListener("click", () => tick(new Set()));
    });
    boxes.forEach((box) => box.addEventListener("change", update));
    update();
  }

  function start() {
    document.querySelectorAll("[data-token-permissions]").forEach(init);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
