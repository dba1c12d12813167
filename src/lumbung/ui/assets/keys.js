// Keys: reads /admin/keys; until this server has virtual keys, says so.
"use strict";
(() => {
  UI.start(async () => {
    const status = document.getElementById("keys-status");
    const res = await UI.call("/admin/keys");
    if (res.status === 404) {
      status.textContent = "This server has no virtual keys yet (GET /admin/keys answered 404).";
      return;
    }
    status.textContent = res.ok ? "" : await UI.errorText(res);
  });
})();
