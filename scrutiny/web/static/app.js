/* Scrutiny dashboard: charts (uPlot), fragments loaded after the page, form helpers. No build step. */
(function () {
  "use strict";

  var RED = "#b3261e", BLUE = "#1f5fbf", BAND = "rgba(179,38,30,0.09)";

  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }

  // Time axis in UTC, 24-hour clock, the date under the first tick of each day.
  function utcTicks(u, splits) {
    var fine = splits.length > 1 && splits[1] - splits[0] < 60; // ticks closer than a minute: show seconds
    return splits.map(function (ts, i) {
      var s = new Date(ts * 1e3).toISOString(), day = s.slice(5, 10), hm = s.slice(11, fine ? 19 : 16);
      var prev = i > 0 ? new Date(splits[i - 1] * 1e3).toISOString().slice(5, 10) : null;
      return prev === day ? hm : hm + "\n" + day;
    });
  }

  function stepped() {
    return uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
  }

  // The series block of a chart's scope: {x, ids, metrics: {name: {y, lower, upper, violated}}}.
  function blockOf(fig) {
    var scope = fig.closest("[data-series-scope]");
    if (!scope) { return null; }
    if (!scope._series) {
      var el = scope.querySelector(":scope > script.series");
      if (!el) { return null; }
      scope._series = JSON.parse(el.textContent);
    }
    return scope._series;
  }

  // One metric over time: the values, the limits in force at each run (shaded beyond the limit),
  // violations as red points; a click opens the measurement under the cursor.
  function drawChart(fig, block) {
    var holder = fig.querySelector(".plot");
    var s = block && block.metrics[fig.dataset.metric];
    if (!s) { holder.textContent = "No values in this range."; return; }
    var x = block.x, ids = block.ids;
    var data = [x, s.y];
    var series = [{}, { label: fig.dataset.metric, stroke: BLUE, width: 1.5, spanGaps: true,
      points: { show: true, size: 5, fill: BLUE } }];
    if (s.lower) {
      data.push(s.lower);
      series.push({ label: "lower limit", stroke: RED, dash: [5, 4], width: 1, fill: BAND, points: { show: false },
        paths: stepped(), fillTo: function (u) { return u.scales.y.min; } });
    }
    if (s.upper) {
      data.push(s.upper);
      series.push({ label: "upper limit", stroke: RED, dash: [5, 4], width: 1, fill: BAND, points: { show: false },
        paths: stepped(), fillTo: function (u) { return u.scales.y.max; } });
    }
    data.push(s.y.map(function (v, i) { return s.violated[i] ? v : null; }));
    series.push({ label: "violation", stroke: RED, paths: function () { return null; },
      points: { show: true, size: 9, fill: RED, stroke: RED } });
    var width = Math.max(280, holder.clientWidth || fig.clientWidth - 20);
    var opts = {
      width: width, height: 200, tzDate: utc,
      scales: { x: { time: true } },
      series: series,
      axes: [{ values: utcTicks }, { size: 60 }],
      cursor: { drag: { x: true, y: false }, points: { size: 8 } },
      legend: { live: true }
    };
    var u = new uPlot(opts, data, holder);
    var down = null;
    u.over.addEventListener("mousedown", function (e) { down = [e.clientX, e.clientY]; });
    u.over.addEventListener("click", function (e) {
      if (down && Math.abs(e.clientX - down[0]) + Math.abs(e.clientY - down[1]) > 4) { return; } // a zoom drag
      var i = u.cursor.idx;
      if (i == null) { i = u.posToIdx(e.offsetX); }
      if (i != null && ids[i]) { window.location.href = holder.dataset.href + encodeURIComponent(ids[i]); }
    });
    u.over.addEventListener("dblclick", function () { u.setScale("x", { min: x[0], max: x[x.length - 1] }); });
    fig._uplot = u;
    holder.dataset.ready = "1";
  }

  function drawCharts() {
    if (typeof uPlot === "undefined") { return; }
    function draw(fig) {
      if (fig._uplot) { return; }
      try { drawChart(fig, blockOf(fig)); } catch (err) { fig.querySelector(".plot").textContent = "Chart failed: " + err; }
    }
    document.querySelectorAll("figure.chart").forEach(function (fig) {
      if (!fig.closest("details:not([open])")) { draw(fig); }
    });
    document.querySelectorAll("details").forEach(function (d) {
      d.addEventListener("toggle", function () {
        if (!d.open) { return; }
        var url = d.getAttribute("data-series-url");
        if (url && !d._series) {
          d.removeAttribute("data-series-url");
          fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
            .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
            .then(function (block) { d._series = block; d.querySelectorAll("figure.chart").forEach(draw); })
            .catch(function (err) {
              d.querySelectorAll("figure.chart .plot").forEach(function (p) { p.textContent = "Could not load: " + err; });
            });
          return;
        }
        d.querySelectorAll("figure.chart").forEach(draw);
      });
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        document.querySelectorAll("figure.chart").forEach(function (fig) {
          var u = fig._uplot;
          if (u) { u.setSize({ width: Math.max(280, fig.clientWidth - 20), height: 200 }); }
        });
      }, 150);
    });
  }

  // Placeholders filled after the page is shown (slow engine calls never hold a page back).
  function loadFragments(root) {
    (root || document).querySelectorAll("[data-src]").forEach(function (el) {
      var url = el.getAttribute("data-src");
      el.removeAttribute("data-src");
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.text().then(function (t) { return [r.ok, t]; }); })
        .then(function (res) { el.innerHTML = res[1]; el.dataset.loaded = res[0] ? "ok" : "error"; })
        .catch(function (err) { el.textContent = "Could not load: " + err; el.dataset.loaded = "error"; });
    });
  }

  // Subscribe form: propose columns from a training CSV's header and first rows, or from a
  // pasted scoring request {"fields": [...], "values": [[...]]}, in the browser.
  function kindOf(values) {
    var seen = values.filter(function (v) { return v !== null && v !== undefined && v !== ""; });
    if (!seen.length) { return "string"; }
    if (seen.every(function (v) { return typeof v === "boolean" || /^(true|false)$/i.test(String(v)); })) { return "boolean"; }
    if (seen.every(function (v) { return /^-?\d+$/.test(String(v)); })) { return "integer"; }
    if (seen.every(function (v) { return String(v).trim() !== "" && !isNaN(Number(v)); })) { return "double"; }
    return "string";
  }

  function splitCsvLine(line) {
    var out = [], cur = "", quoted = false;
    for (var i = 0; i < line.length; i++) {
      var ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; }
        else if (ch === '"') { quoted = false; }
        else { cur += ch; }
      } else if (ch === '"') { quoted = true; }
      else if (ch === ",") { out.push(cur); cur = ""; }
      else { cur += ch; }
    }
    out.push(cur);
    return out;
  }

  function propose(form, fields, rows) {
    var label = form.elements["label_column"].value.trim();
    var outputs = [form.elements["prediction_field"].value.trim(), form.elements["probability_field"].value.trim()];
    var features = [], categorical = [];
    fields.forEach(function (f, j) {
      if (f === label || outputs.indexOf(f) >= 0) { return; }
      features.push(f);
      var kind = kindOf(rows.map(function (r) { return r[j]; }));
      if (kind === "string" || kind === "boolean") { categorical.push(f); }
    });
    form.elements["feature_fields"].value = features.join("\n");
    form.elements["categorical_fields"].value = categorical.join("\n");
    var note = form.querySelector(".proposal-note");
    if (note) { note.textContent = "Proposed " + features.length + " features (" + categorical.length + " categorical) from the sample."; }
  }

  function wireSubscribeForm(form) {
    var file = form.elements["training_file"];
    if (file) {
      file.addEventListener("change", function () {
        var f = file.files && file.files[0];
        if (!f || /\.parquet$/i.test(f.name)) { return; }
        f.slice(0, 256 * 1024).text().then(function (text) {
          var lines = text.split(/\r?\n/).filter(function (l) { return l.length; });
          if (lines.length < 1) { return; }
          var header = splitCsvLine(lines[0]);
          var rows = lines.slice(1, Math.min(lines.length - 1, 200)).map(splitCsvLine);
          if (!form.elements["label_column"].value && header.length) {
            form.elements["label_column"].value = header[header.length - 1];
          }
          propose(form, header, rows);
        });
      });
    }
    var sample = form.querySelector("button[data-propose-sample]");
    if (sample) {
      sample.addEventListener("click", function () {
        var note = form.querySelector(".proposal-note");
        try {
          var body = JSON.parse(form.elements["sample"].value);
          var req = body.request || body;
          if (!Array.isArray(req.fields)) { throw new Error("no \"fields\" list"); }
          propose(form, req.fields, req.values || []);
        } catch (err) {
          if (note) { note.textContent = "Not a scoring request in the common format: " + err.message; }
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    loadFragments();
    document.querySelectorAll("form.subscribe").forEach(wireSubscribeForm);
    document.querySelectorAll("[data-confirm]").forEach(function (el) {
      el.addEventListener("click", function (e) { if (!window.confirm(el.dataset.confirm)) { e.preventDefault(); } });
    });
  });
})();
