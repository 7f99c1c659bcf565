/* The page that shows a new User Token secret once: a button copies it to the clipboard. */
"use strict";
(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Older browsers and plain-HTTP hosts: select the text and use the legacy command.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function start() {
    document.querySelectorAll("button[data-copy-target]").forEach((button) => {
      const status = document.getElementById(button.dataset.copyStatus || "");
      button.addEventListener("click", () => {
        const source = document.getElementById(button.dataset.copyTarget);
        if (!source) {
          return;
        }
        copyText(source.textContent.trim()).then(
          () => {
            if (status) status.textContent = "Copied to the clipboard.";
          },
          () => {
            if (status) status.textContent = "Copy failed: select the value and copy it by hand.";
          }
        );
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
