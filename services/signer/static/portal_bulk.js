// Bulk signing's progress: asks /p/bulk/<run>/progress twice a second and moves the bar and each document's line;
// when the run is over it reloads, and the server's page shows the summary. Text is set as text, never as HTML.
"use strict";
(function () {
  const box = document.getElementById("bulk-run");
  if (!box || box.dataset.finished === "yes") return;
  const bar = document.getElementById("bulk-progress");
  const said = document.getElementById("bulk-said");
  const url = "/p/bulk/" + encodeURIComponent(box.dataset.run) + "/progress";

  function show(state) {
    bar.max = state.count;
    bar.value = state.done;
    said.textContent = state.said;
    for (const item of state.items) {
      const line = document.querySelector('#bulk-items li[data-position="' + item.position + '"]');
      if (!line) continue;
      line.dataset.outcome = item.outcome;
      line.querySelector(".outcome").textContent = item.said;
    }
  }

  async function poll() {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const state = await answer.json();
        show(state);
        if (state.finished) {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // the service restarting, or the network gone for a moment: ask again
    }
    window.setTimeout(poll, 500);
  }
  window.setTimeout(poll, 300);
})();
