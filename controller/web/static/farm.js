// farmctl's page: live updates from GET /api/v1/events, the upload with its progress bar, the charts.
// The server renders every fragment; this file only decides when to fetch one again, and fills in the
// few figures (progress, temperatures) that change many times a minute.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf;
  var liveBadge = document.getElementById("live");

  function fire(name, target) { htmx.trigger(target || body, name); }
  function refresh(names) {
    names.split(" ").forEach(function (n) { if (n) fire("farm-" + n); });
  }

  function toast(text, ok) {
    var el = document.getElementById("toast");
    el.textContent = text;
    el.className = ok ? "toast ok" : "toast";
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { el.hidden = true; }, 6000);
  }

  function errorText(xhr) {
    try { return JSON.parse(xhr.responseText).error || xhr.statusText; } catch (e) { return xhr.statusText || "no answer"; }
  }

  // After a button's API call: show what went wrong, or fetch the fragments it changed.
  body.addEventListener("htmx:afterRequest", function (ev) {
    var elt = ev.detail.elt;
    var xhr = ev.detail.xhr;
    if (xhr && xhr.status === 401) { location.assign("/"); return; }
    if (!elt || !elt.dataset || elt.dataset.refresh === undefined) return;
    if (ev.detail.successful) refresh(elt.dataset.refresh);
    else toast(errorText(xhr), false);
  });

  // --- live: printer and job changes ----------------------------------------------------------------

  function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }); }

  function temps(p) {
    var names = Object.keys(p.temperatures || {}).sort().filter(function (n) { return p.temperatures[n].actual !== null; });
    if (!names.length) return "no temperatures";
    return names.map(function (n) {
      var t = p.temperatures[n];
      return n + " " + fmt(t.actual, 1) + "/" + fmt(t.target, 0) + " °C";
    }).join(" · ");
  }

  function field(card, name) { return card.querySelector('[data-field="' + name + '"]'); }

  function onPrinter(p) {
    recordTemps(p);
    var card = document.getElementById("printer-" + p.name);
    if (!card) return;
    var job = p.job_id === null || p.job_id === undefined ? "" : String(p.job_id);
    var maint = p.maintenance ? "true" : "false";
    if (card.dataset.state !== p.state || card.dataset.bedClear !== String(p.bed_clear) || card.dataset.job !== job ||
        card.dataset.maintenance !== maint) {
      // Another state shows other buttons and reasons: the server renders the card again.
      fire("farm-card", card);
      return;
    }
    card.dataset.detail = p.detail;  // the host's own words: Pausing, then Paused
    var bar = field(card, "progress");
    if (bar && p.progress !== null) bar.value = p.progress;
    var text = field(card, "progress-text");
    if (text) text.textContent = fmt(p.progress, 1) + " %";
    field(card, "temps").textContent = temps(p);
    // The job's line in the queue follows its printer's progress too.
    var line = job && document.getElementById("job-" + job);
    if (line && p.progress !== null) {
      var jobBar = field(line, "progress");
      if (jobBar) jobBar.value = p.progress;
      var jobText = field(line, "progress-text");
      if (jobText) jobText.textContent = fmt(p.progress, 1) + " %";
    }
  }

  function onJob() {
    refresh("queue history printers usage");
    scheduleKwh();
  }

  var source = null;
  var pollTimer = null;

  function setLive(state, text) {
    liveBadge.className = "live " + state;
    liveBadge.textContent = text;
  }

  function poll() {
    fetch("/api/v1/printers", { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.assign("/"); return null; }
      return r.ok ? r.json() : null;
    }).then(function (list) {
      if (list) list.forEach(onPrinter);
    }).catch(function () {});
    refresh("queue");
  }

  // The event stream carries every change, progress and temperatures too (each printer at most once a
  // second). While it reconnects the page asks for the printers' figures itself: every 2 s while
  // something prints, every 10 s otherwise (for the temperature chart), never in a hidden tab.
  var lastTick = 0;
  function streaming() { return source !== null && source.readyState === EventSource.OPEN; }
  function tick() {
    if (document.hidden || pollTimer !== null || streaming()) return;
    var busy = document.querySelector('.card[data-state="printing"], .card[data-state="paused"]');
    if (!busy && Date.now() - lastTick < 10000) return;
    lastTick = Date.now();
    fetch("/api/v1/printers", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (list) {
      if (list) list.forEach(onPrinter);
    }).catch(function () {});
  }

  function startPolling() {
    if (pollTimer === null) {
      setLive("polling", "polling every 5 s");
      pollTimer = setInterval(poll, 5000);
      poll();
    }
  }

  function stopPolling() {
    if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
  }

  // EventSource reconnects by itself after a dropped connection; a refused one (no endpoint yet, or the
  // session expired) it gives up on: then the page polls and tries the stream again every 15 s.
  function connect() {
    source = new EventSource("/api/v1/events");
    source.addEventListener("open", function () { stopPolling(); setLive("on", "live"); refresh("printers queue"); });
    source.addEventListener("printer", function (e) { onPrinter(JSON.parse(e.data)); });
    source.addEventListener("job", function (e) { onJob(JSON.parse(e.data)); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        startPolling();
        setTimeout(connect, 15000);
      } else {
        setLive("", "reconnecting…");
      }
    });
  }

  // --- upload ---------------------------------------------------------------------------------------

  var form = document.getElementById("upload");
  if (form) {
    var input = document.getElementById("upload-file");
    var drop = document.getElementById("drop");
    var bar = document.getElementById("upload-progress");
    var percent = document.getElementById("upload-percent");
    var result = document.getElementById("upload-result");
    var send = document.getElementById("upload-send");
    var named = document.getElementById("upload-name");

    input.addEventListener("change", function () { named.textContent = input.files.length ? input.files[0].name : ""; });
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        named.textContent = input.files[0].name;
      }
    });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!input.files.length) return;
      var data = new FormData();
      // The fields go before the file: the daemon refuses a bad option before the upload is stored.
      ["copies", "priority", "material", "nozzle", "printer", "group", "owner"].forEach(function (name) {
        var value = form.elements[name].value.trim();
        if (value !== "") data.append(name, value);
      });
      data.append("file", input.files[0], input.files[0].name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/jobs");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      bar.value = 0;
      bar.dataset.events = "0";
      percent.textContent = "0 %";
      result.textContent = "";
      result.className = "result";
      send.disabled = true;
      xhr.upload.addEventListener("progress", function (ev) {
        if (!ev.lengthComputable) return;
        bar.value = Math.round(ev.loaded / ev.total * 100);
        bar.dataset.events = String(Number(bar.dataset.events) + 1);
        percent.textContent = bar.value + " %";
      });
      xhr.addEventListener("load", function () {
        send.disabled = false;
        if (xhr.status === 201) {
          var ids = JSON.parse(xhr.responseText).jobs.map(function (j) { return "#" + j.id; });
          result.textContent = "Queued as job " + ids.join(", ");
          result.className = "result ok";
          form.reset();
          named.textContent = "";
          refresh("queue printers");
        } else {
          result.textContent = "Refused (" + xhr.status + "): " + errorText(xhr);
          result.className = "result bad";
        }
      });
      xhr.addEventListener("error", function () {
        send.disabled = false;
        result.textContent = "The upload broke off: is the daemon running?";
        result.className = "result bad";
      });
      xhr.send(data);
    });
  }

  // --- charts ---------------------------------------------------------------------------------------

  var width = function (el) { return Math.max(200, el.clientWidth - 8); };
  var kwhBox = document.getElementById("chart-kwh");
  var tempBox = document.getElementById("chart-temps");
  var kwhChart = null;
  var kwhTimer = null;

  function day(d) { return d.toISOString().slice(0, 10); }

  function drawKwh() {
    var now = new Date();
    var since = new Date(now.getTime() - 29 * 86400000);
    var until = new Date(now.getTime() + 86400000);
    var url = "/api/v1/reports/usage?group_by=day&since=" + day(since) + "&until=" + day(until);
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (report) {
      if (!report) return;
      var xs = [], ys = [];
      report.rows.forEach(function (row) {
        xs.push(Date.parse(row.key + "T12:00:00Z") / 1000);
        ys.push(row.energy_kwh);
      });
      if (kwhChart) { kwhChart.destroy(); kwhChart = null; }
      if (!ys.some(function (y) { return y > 0; })) {
        kwhBox.textContent = "No measured energy in the last 30 days (a printer needs a metering plug).";
        return;
      }
      kwhBox.textContent = "";
      kwhChart = new uPlot({
        width: width(kwhBox), height: 160,
        scales: { x: { time: true } },
        series: [{}, { label: "kWh", stroke: "#1f7a45", fill: "rgba(31,122,69,0.3)", paths: uPlot.paths.bars({ size: [0.6, 40] }) }],
        axes: [{}, { size: 40 }],
      }, [xs, ys], kwhBox);
    }).catch(function () {});
  }

  function scheduleKwh() {
    clearTimeout(kwhTimer);
    kwhTimer = setTimeout(drawKwh, 3000);
  }

  // Temperatures as the page sees them: a sample per printer event, the last 10 minutes at most.
  var tempNames = [];
  var tempData = [[]];
  var tempLast = {};
  var tempChart = null;
  var tempDirty = false;
  var colours = ["#2563eb", "#b42318", "#1f7a45", "#b7791f", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];

  function recordTemps(p) {
    Object.keys(p.temperatures || {}).forEach(function (n) {
      if (p.temperatures[n].actual === null) return;  // a sensor the printer does not have
      var key = p.name + " " + n;
      if (tempNames.indexOf(key) < 0) {
        tempNames.push(key);
        tempData.push(tempData[0].map(function () { return null; }));
        if (tempChart) { tempChart.destroy(); tempChart = null; }
      }
      tempLast[key] = p.temperatures[n].actual;
    });
    tempDirty = true;
  }

  function sampleTemps() {
    var last = tempData[0].length ? tempData[0][tempData[0].length - 1] : 0;
    // A printer whose temperatures hold still sends nothing: draw its line on every 5 s all the same.
    if (!tempDirty && Date.now() / 1000 - last < 5) return;
    tempDirty = false;
    tempData[0].push(Date.now() / 1000);
    tempNames.forEach(function (key, i) { tempData[i + 1].push(tempLast[key] === undefined ? null : tempLast[key]); });
    if (tempData[0].length > 600) tempData.forEach(function (s) { s.shift(); });
    if (!tempNames.length) return;
    if (!tempChart) {
      var series = [{}].concat(tempNames.map(function (key, i) {
        return { label: key, stroke: colours[i % colours.length], width: 1.5 };
      }));
      tempChart = new uPlot({ width: width(tempBox), height: 200, series: series, axes: [{}, { size: 40 }] }, tempData, tempBox);
    } else {
      tempChart.setData(tempData);
    }
  }

  window.addEventListener("resize", function () {
    if (kwhChart) kwhChart.setSize({ width: width(kwhBox), height: 160 });
    if (tempChart) tempChart.setSize({ width: width(tempBox), height: 200 });
  });

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    drawKwh();
    setInterval(sampleTemps, 1000);
    setInterval(tick, 2000);
  });
})();
