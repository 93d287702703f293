// The operators' live view: follows /p/ops/events (Server-Sent Events) and puts each new event on top of the
// table. EventSource reconnects by itself and sends the last event id back (Last-Event-ID), so the server goes on
// where the page left off. Everything is set as text, never as HTML: a summary or a title is not markup.
"use strict";
(function () {
  const table = document.getElementById("live");
  const body = table.tBodies[0];
  const status = document.getElementById("live-status");
  const empty = document.getElementById("live-empty");
  const KEEP = 500;

  function say(text, tone) {
    status.textContent = text;
    status.className = "notice " + tone;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function show(entry) {
    const row = body.insertRow(0);
    if (Date.now() - opened > 1500) row.className = "new";  // not the entries a (re)connection starts with
    row.dataset.seq = entry.seq;
    row.dataset.type = entry.type;
    cell(row, entry.at, "mono");
    cell(row, entry.type, "mono" + (entry.tone ? " tone-" + entry.tone : ""));
    const doc = cell(row, "", "id");
    if (entry.linked) {
      const link = document.createElement("a");
      link.href = "/p/ops/documents/" + encodeURIComponent(entry.document);
      link.textContent = entry.document.slice(0, 8);
      doc.appendChild(link);
    }
    if (entry.hidden) cell(row, table.dataset.hidden, "hidden-title");
    else cell(row, entry.title || "");
    cell(row, entry.what);
    while (body.rows.length > KEEP) body.deleteRow(-1);
    empty.hidden = true;
  }

  let opened = Date.now();
  const source = new EventSource(table.dataset.stream);
  source.onopen = function () { opened = Date.now(); say(table.dataset.connected, "ok"); };
  source.onmessage = function (message) { show(JSON.parse(message.data)); };
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) say(table.dataset.ended, "bad");
    else say(table.dataset.reconnecting, "bad");
  };
  source.addEventListener("end", function () {
    source.close();
    say(table.dataset.ended, "bad");
  });
})();
