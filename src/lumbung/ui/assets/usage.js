// Usage: reads /admin/usage; until this server has usage ledger, says so.
"use strict";
(() => {
  UI.start(async () => {
    const status = document.getElementById("usage-status");
    const res = await UI.call("/admin/usage");
    if (res.status === 404) {
      status.textContent = "This server has no usage ledger yet (GET /admin/usage answered 404).";
      return;
    }
    status.textContent = res.ok ? "" : await UI.errorText(res);
  });
})();
