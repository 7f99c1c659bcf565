/* User Token form: a date or time typed (or picked) for the expiry selects "Custom date", the
   only expiry preset that uses it (the server still refuses a date with a day preset). */
"use strict";
(function () {
  function start() {
    const custom = document.querySelector('input[name="expiry_preset"][value="custom"]');
    const parts = Array.from(document.querySelectorAll('input[name^="expires_at_"]'));
    if (!custom || parts.length === 0) {
      return;
    }
    let seen = parts.map((part) => part.value);

    function check() {
      const now = parts.map((part) => part.value);
      const changed = now.some((value, i) => value !== seen[i] && value.trim() !== "");
      seen = now;
      if (changed && !custom.checked) {
        custom.checked = true;
        custom.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }

    parts.forEach((part) => {
      part.addEventListener("input", check);
      part.addEventListener("change", check);
    });
    // The admin's calendar and clock (and their Today/Now links) set the value without an event.
    document.addEventListener("click", check);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
