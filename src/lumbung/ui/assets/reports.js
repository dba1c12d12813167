// Reports: reads /ui/api/reports; until this server has migration reports, says so.
"use strict";
(() => {
  UI.start(async () => {
    const status = document.getElementById("reports-status");
    const res = await UI.call("/ui/api/reports");
    if (res.status === 404) {
      status.textContent = "This server has no migration reports yet (GET /ui/api/reports answered 404).";
      return;
    }
    status.textContent = res.ok ? "" : await UI.errorText(res);
  });
})();
