/* nudge dashboard: asks for the admin key once (kept in this tab's sessionStorage, never
   in a URL or a cookie), then reads the report routes scripts use and draws them.
   No framework, no build step; charts with the vendored uPlot. Every text that comes
   from data is set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  var KEY = "nudge.adminKey";
  var PCT = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  var NUM = new Intl.NumberFormat();

  function $(sel) { return document.querySelector(sel); }

  // h("td", {class: "x"}, "text", child...) -> an element; attributes never carry style.
  function h(tag, attrs) {
    var el = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (k) {
      if (a[k] === null || a[k] === undefined || a[k] === false) return;
      if (k === "text") el.textContent = a[k];
      else el.setAttribute(k, a[k] === true ? "" : a[k]);
    });
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, child) {
    if (child === null || child === undefined) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(el, c); }); return; }
    el.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  var SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs) {
    var el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c !== null && c !== undefined) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return el;
  }

  function pct(v) { return typeof v === "number" && isFinite(v) ? PCT.format(v) : "—"; }
  function num(v) { return typeof v === "number" && isFinite(v) ? NUM.format(v) : "—"; }
  function signedPct(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    return (v > 0 ? "+" : "") + PCT.format(v);
  }
  function pval(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    return v < 0.001 ? "< 0.001" : v.toFixed(3);
  }
  function seconds(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    return v >= 120 ? (v / 60).toFixed(1) + " min" : Math.round(v) + " s";
  }

  // ---- the key and the API ------------------------------------------------------------
  function AuthError(status, message) { this.status = status; this.message = message; }

  var memo = null; // where sessionStorage is refused (some private modes): this page only
  function getKey() { try { return sessionStorage.getItem(KEY) || memo; } catch (e) { return memo; } }

  function api(path) {
    return fetch(path, {
      headers: { Authorization: "Bearer " + getKey(), Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    }).then(function (r) {
      return r.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        var message = (body && body.message) || r.statusText || String(r.status);
        if (r.status === 401 || r.status === 403) throw new AuthError(r.status, message);
        // no such route yet, no such report, no archive: the section's empty state
        if (r.status === 404 || r.status === 503) return { missing: true, status: r.status, message: message };
        if (!r.ok) throw new Error(r.status + ": " + message);
        return { data: body };
      });
    });
  }

  function askForKey(message) {
    memo = null;
    try { sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
    $("#main").hidden = true;
    $("#signout").hidden = true;
    $("#auth").hidden = false;
    $("#key-error").textContent = message || "";
    var input = $("#key");
    input.value = "";
    input.setAttribute("aria-invalid", message ? "true" : "false");
    input.focus();
  }

  function failed(section, err) {
    if (err instanceof AuthError) {
      askForKey("The key was refused (" + err.status + "): " + err.message);
      return;
    }
    body(section, h("p", { class: "error", role: "alert", text: "Could not load: " + err.message }));
    console.warn("nudge dashboard: " + section + ": " + err.message);
  }

  // Performance marks (the browser's performance panel shows them; the load test reads
  // them): `nudge:<section>` each time a section is drawn, `nudge:loaded` once all are.
  function mark(name) { try { performance.mark(name); } catch (e) { /* no User Timing */ } }

  function body(section, content) {
    var el = document.querySelector("#" + section + " .body");
    el.replaceChildren();
    add(el, content);
    document.getElementById(section).removeAttribute("aria-busy");
    mark("nudge:" + section);
  }

  function empty(section, res) {
    var el = document.querySelector("#" + section + " .body");
    var text = el.getAttribute("data-empty");
    if (res && res.missing) text += " (" + res.status + ": " + res.message + ")";
    body(section, h("p", { class: "empty", text: text }));
  }

  function busy(section) { document.getElementById(section).setAttribute("aria-busy", "true"); }

  function status(text) { $("#status").textContent = text; }

  // ---- triggers: KPIs and a daily sparkline with anomaly marks -----------------------------
  function sparkline(daily) {
    var wrap = h("span", { class: "spark" });
    if (!daily.length || typeof uPlot === "undefined") return wrap;
    var xs = [], fired = [], sent = [], flagged = [];
    daily.forEach(function (d) {
      xs.push(Date.parse(d.date + "T00:00:00Z") / 1000);
      fired.push(d.fired);
      sent.push(d.sent);
      flagged.push(d.anomaly ? d.fired : null);
    });
    var anomalies = daily.filter(function (d) { return d.anomaly; }).map(function (d) { return d.date; });
    wrap.setAttribute("role", "img");
    wrap.setAttribute("aria-label", "Fired per day over " + daily.length + " days, from " +
      daily[0].fired + " to " + daily[daily.length - 1].fired +
      (anomalies.length ? "; anomalies on " + anomalies.join(", ") : "; no anomaly"));
    var opts = {
      width: 160, height: 36, pxAlign: false,
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: true } },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        { stroke: "#0b57d0", width: 1.5, points: { show: false } },
        { stroke: "#6b7480", width: 1, dash: [3, 2], points: { show: false } },
        { stroke: "#b3261e", width: 0, points: { show: true, size: 7, fill: "#b3261e", stroke: "#b3261e" } },
      ],
    };
    // drawn once the row is in the document (uPlot measures its container)
    requestAnimationFrame(function () { new uPlot(opts, [xs, fired, sent, flagged], wrap); });
    return wrap;
  }

  function loadTriggers() {
    busy("triggers");
    var days = $("#trigger-days").value;
    return api("v1/reports/triggers?days=" + encodeURIComponent(days)).then(function (res) {
      var list = res.data && res.data.triggers;
      if (res.missing || !list || !list.length) return empty("triggers", res);
      var rows = list.map(function (t) {
        var daily = t.daily || [];
        var flagged = daily.filter(function (d) { return d.anomaly; });
        return h("tr", null,
          h("th", { scope: "row", text: t.id }),
          h("td", { text: num(t.fired) }),
          h("td", { text: num(t.sent) }),
          h("td", { text: pct(t.response_rate) }),
          h("td", { text: pct(t.conversion_rate) }),
          h("td", { text: seconds(t.engagement_seconds) }),
          h("td", { text: signedPct(t.retention_vs_holdout) }),
          h("td", null, sparkline(daily)),
          h("td", flagged.length ? { class: "anomaly", title: flagged.map(function (d) { return d.date; }).join(", ") } : null,
            flagged.length ? "⚠ " + flagged.length + (flagged.length === 1 ? " day" : " days") : "none"));
      });
      body("triggers", [h("p", { class: "help", id: "triggers-note",
        text: "Last " + days + " days. Daily: fired (blue), sent (grey, dashed), anomalies (red dots)." }),
      h("div", { class: "scroll" }, h("table", { "aria-describedby": "triggers-note" },
        h("caption", { text: "KPIs per trigger" }),
        h("thead", null, h("tr", null,
          ["Trigger", "Fired", "Sent", "Response", "Conversion", "Engagement", "Retention vs holdout", "Daily", "Anomalies"]
            .map(function (c) { return h("th", { scope: "col", text: c }); }))),
        h("tbody", null, rows)))]);
    }).catch(function (err) { failed("triggers", err); });
  }

  // ---- experiments: conversion rates with their intervals, lift, tests --------------------
  function intervals(report) {
    var vs = report.variants || [];
    var top = 0;
    vs.forEach(function (v) { top = Math.max(top, v.ci_high || 0, v.conversion_rate || 0); });
    top = top > 0 ? Math.min(1, Math.ceil(top * 11) / 10) : 0.1;
    // drawn at the width it is shown at, so its text keeps its size on a phone
    var shown = document.querySelector("#experiments .body").clientWidth || 600;
    var W = Math.max(300, Math.min(720, shown)), left = 110, right = 24, rowH = 30, axisH = 26;
    var H = vs.length * rowH + axisH + 6;
    var x = function (v) { return left + (W - left - right) * (v / top); };
    var control = report.metrics && report.metrics.control;
    var parts = [s("title", {}, "Conversion rate per variant with its 95 % interval")];
    vs.forEach(function (v, i) {
      var y = 14 + i * rowH;
      var g = s("g", { class: v.name === control ? "control" : "variant" });
      g.appendChild(s("text", { x: 0, y: y + 4 }, v.name + (v.name === control ? " (control)" : "")));
      if (typeof v.ci_low === "number" && typeof v.ci_high === "number") {
        g.appendChild(s("line", { class: "ci", x1: x(v.ci_low), x2: x(v.ci_high), y1: y, y2: y }));
        g.appendChild(s("line", { class: "ci", x1: x(v.ci_low), x2: x(v.ci_low), y1: y - 6, y2: y + 6 }));
        g.appendChild(s("line", { class: "ci", x1: x(v.ci_high), x2: x(v.ci_high), y1: y - 6, y2: y + 6 }));
      }
      if (typeof v.conversion_rate === "number") {
        g.appendChild(s("circle", { class: "dot", cx: x(v.conversion_rate), cy: y, r: 5 }));
      } else {
        g.appendChild(s("text", { x: left, y: y + 4 }, "no users yet"));
      }
      parts.push(g);
    });
    var ay = vs.length * rowH + 4;
    parts.push(s("line", { class: "axis", x1: left, x2: W - right, y1: ay, y2: ay }));
    [0, top / 2, top].forEach(function (t) {
      parts.push(s("line", { class: "axis", x1: x(t), x2: x(t), y1: ay, y2: ay + 4 }));
      parts.push(s("text", { x: x(t), y: ay + 18, "text-anchor": t === 0 ? "start" : t === top ? "end" : "middle" }, PCT.format(t)));
    });
    var label = vs.map(function (v) {
      return v.name + ": " + pct(v.conversion_rate) + " (95 % CI " + pct(v.ci_low) + " to " + pct(v.ci_high) + ")";
    }).join("; ");
    var svg = s("svg", { class: "intervals", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label || "no variants" });
    parts.forEach(function (p) { svg.appendChild(p); });
    return svg;
  }

  function verdictBadge(seq) {
    if (!seq || !seq.verdict) return "—";
    var v = String(seq.verdict).toLowerCase();
    var kind = /win|better|superior|positive/.test(v) ? "good"
      : /los|worse|inferior|harm|negative/.test(v) ? "bad" : "neutral";
    var text = String(seq.verdict);
    if (typeof seq.ci_low === "number" && typeof seq.ci_high === "number") {
      text += " [" + signedPct(seq.ci_low) + ", " + signedPct(seq.ci_high) + "]";
    }
    return h("span", { class: "badge " + kind, text: text, title: "always-valid p " + pval(seq.p_value) });
  }

  function experimentBlock(meta, res) {
    var title = h("h3", null, meta.name && meta.name !== meta.id ? meta.name + " " : "", h("code", { text: meta.id }));
    if (res.missing || !res.data) {
      return h("div", { class: "exp", "data-experiment": meta.id }, title,
        h("p", { class: "empty", text: "No report yet (" + res.status + ": " + res.message + ")" }));
    }
    var r = res.data;
    var goal = r.goal || {};
    var hours = goal.within_seconds ? Math.round(goal.within_seconds / 3600) + " h" : "";
    var srm = typeof r.srm_p_value === "number" && r.srm_p_value < 0.001
      ? h("p", { class: "warn", role: "alert",
        text: "Sample-ratio mismatch (p < 0.001): the variants' user counts are not in their configured weights; the assignment or exposure logging is broken, do not trust this result." })
      : null;
    var rows = (r.variants || []).map(function (v) {
      return h("tr", null,
        h("th", { scope: "row", text: v.name }),
        h("td", { text: num(v.users) }),
        h("td", { text: num(v.conversions) }),
        h("td", { text: pct(v.conversion_rate) }),
        h("td", { text: pct(v.ci_low) + " – " + pct(v.ci_high) }),
        h("td", { text: signedPct(v.lift) }),
        h("td", { text: pval(v.p_value) }),
        h("td", null, verdictBadge(v.sequential)));
    });
    return h("div", { class: "exp", "data-experiment": meta.id }, title,
      h("p", { class: "meta", text: "Trigger " + (meta.trigger || "?") + " · goal " + (goal.event || "?") +
        (hours ? " within " + hours : "") + " · control " + ((r.metrics && r.metrics.control) || "?") +
        " · SRM p " + pval(r.srm_p_value) }),
      srm, intervals(r),
      h("p", { class: "help", id: "note-" + meta.id,
        text: "Per variant: users exposed, conversions, conversion rate with its 95 % Wilson interval (the bars above), lift over the control, p-value, sequential verdict." }),
      h("div", { class: "scroll" }, h("table", { "aria-describedby": "note-" + meta.id },
        h("caption", { text: "Variants of " + meta.id }),
        h("thead", null, h("tr", null,
          ["Variant", "Users", "Conversions", "Rate", "95 % CI", "Lift", "p-value", "Sequential"]
            .map(function (c) { return h("th", { scope: "col", text: c }); }))),
        h("tbody", null, rows))));
  }

  function loadExperiments() {
    busy("experiments");
    return api("v1/experiments").then(function (res) {
      var list = res.data && res.data.experiments;
      if (res.missing || !list || !list.length) return empty("experiments", res);
      return Promise.all(list.map(function (meta) {
        return api("v1/experiments/" + encodeURIComponent(meta.id)).then(function (r) { return [meta, r]; });
      })).then(function (results) {
        shownExperiments = results;
        drawExperiments();
      });
    }).catch(function (err) { failed("experiments", err); });
  }

  // The reports last shown, redrawn (not fetched again) when the width changes, so the
  // intervals keep readable text after a phone turns or a window narrows.
  var shownExperiments = null;
  function drawExperiments() {
    if (!shownExperiments) return;
    body("experiments", shownExperiments.map(function (x) { return experimentBlock(x[0], x[1]); }));
  }
  var drawnWidth = window.innerWidth, resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (Math.abs(window.innerWidth - drawnWidth) < 40) return;
      drawnWidth = window.innerWidth;
      drawExperiments();
    }, 150);
  });

  // ---- cohorts: a retention heatmap -------------------------------------------------------
  function heatCell(r) {
    var td = h("td", { class: "cell", text: pct(r) });
    if (typeof r === "number") {
      var light = 97 - Math.max(0, Math.min(1, r)) * 55;
      td.style.backgroundColor = "hsl(217, 90%, " + light.toFixed(0) + "%)";
      if (light < 52) td.classList.add("dark");
    }
    return td;
  }

  function loadCohorts() {
    busy("cohorts");
    var period = document.querySelector("input[name=period]:checked").value;
    return api("v1/reports/cohorts?period=" + period).then(function (res) {
      var list = res.data && res.data.cohorts;
      if (res.missing || !list || !list.length) return empty("cohorts", res);
      var width = 0;
      list.forEach(function (c) { width = Math.max(width, (c.retention || []).length); });
      var head = ["Cohort", "Users"];
      for (var k = 0; k < width; k++) head.push("+" + k);
      var rows = list.map(function (c) {
        var cells = [];
        for (var k = 0; k < width; k++) {
          cells.push(k < (c.retention || []).length ? heatCell(c.retention[k]) : h("td", { text: "" }));
        }
        return h("tr", null, h("th", { scope: "row", text: c.cohort }), h("td", { text: num(c.size) }), cells);
      });
      body("cohorts", [h("p", { class: "help", id: "cohorts-note",
        text: "Share of each " + period + "'s new users with an event " + period + "s later (+k); darker is more." }),
      h("div", { class: "scroll" }, h("table", { class: "heat", "aria-describedby": "cohorts-note" },
        h("caption", { text: "Retention by " + period + " cohort" }),
        h("thead", null, h("tr", null, head.map(function (c) { return h("th", { scope: "col", text: c }); }))),
        h("tbody", null, rows)))]);
    }).catch(function (err) { failed("cohorts", err); });
  }

  // ---- funnel: bars with the drop-off of each step, split by segment or variant -----------
  function bars(steps, label) {
    var first = steps.length ? steps[0].users || 0 : 0;
    return h("ol", { class: "bars", "aria-label": label }, steps.map(function (st, i) {
      var share = typeof st.conversion === "number" ? st.conversion : first ? (st.users || 0) / first : 0;
      var fill = h("div", { class: "bar-fill" });
      fill.style.width = (Math.max(0, Math.min(1, share)) * 100).toFixed(1) + "%";
      return h("li", null,
        h("div", { class: "bar-label" },
          h("span", null, h("strong", { text: (i + 1) + ". " + st.event })),
          h("span", null, num(st.users) + " users · " + pct(share),
            i > 0 ? h("span", { class: "drop", text: " · drop-off " + pct(st.drop_off) }) : null)),
        h("div", { class: "bar-track", role: "presentation" }, fill));
    }));
  }

  function groupSteps(value) {
    if (Array.isArray(value)) return value;
    if (value && Array.isArray(value.steps)) return value.steps;
    return null;
  }

  function loadFunnel() {
    busy("funnel");
    var form = $("#funnel-form");
    var steps = form.steps.value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
    var q = "steps=" + encodeURIComponent(steps.join(",")) + "&within=" + encodeURIComponent(form.within.value.trim());
    if (form.by.value) q += "&by=" + encodeURIComponent(form.by.value);
    return api("v1/reports/funnel?" + q).then(function (res) {
      var data = res.data;
      if (res.missing || !data || !data.steps || !data.steps.length) return empty("funnel", res);
      var out = [bars(data.steps, "All users")];
      var groups = data.groups || {};
      Object.keys(groups).forEach(function (name) {
        var gs = groupSteps(groups[name]);
        if (gs && gs.length) {
          out.push(h("div", { class: "group" }, h("h3", { text: (form.by.value || "group") + ": " + name }), bars(gs, name)));
        }
      });
      body("funnel", out);
    }).catch(function (err) { failed("funnel", err); });
  }

  // ---- segments: sizes as bars, the centroids as a table -----------------------------------
  var FEATURE_LABELS = {
    recency_days: "Recency (days)", orders: "Orders", revenue: "Revenue", sessions: "Sessions",
    session_minutes: "Session min", page_views: "Page views", cart_adds: "Cart adds",
    abandonments: "Abandonments",
  };
  function fixed(v, digits) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "—";
  }
  function signedFixed(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    return (v > 0 ? "+" : v < 0 ? "−" : "") + Math.abs(v).toFixed(2);
  }

  function runLine(run) {
    if (!run) return null;
    var when = run.finished ? " · finished " + shortTime(run.finished) + " UTC" : "";
    if (run.ok) {
      var v = run.items_validation, recs = "";
      if (v && v.hr_candidate !== undefined && v.hr_candidate !== null) {
        recs = " · recommender HR@10 " + v.hr_candidate.toFixed(3) +
          " (popularity " + (v.hr_popularity === null ? "–" : v.hr_popularity.toFixed(3)) +
          ", in service " + (v.hr_serving === null || v.hr_serving === undefined ? "none" : v.hr_serving.toFixed(3)) +
          (v.promoted ? ", promoted)" : ", kept the one in service)");
      }
      return h("p", { class: "meta", id: "segments-run",
        text: "Last training run: ok" + when + " · " + num(run.users) + " users · " + seconds(run.duration_seconds) + recs });
    }
    return h("p", { class: "warn", role: "alert", id: "segments-run",
      text: "The last training run failed" + when + ": " + ((run.errors || []).join("; ") || "no reason given") +
        ". The segments below are from the last good run." });
  }

  function loadSegments() {
    busy("segments");
    return api("v1/reports/segments").then(function (res) {
      var data = res.data;
      var list = data && data.segments;
      if (res.missing || !list || !list.length) {
        empty("segments", res);
        var run = data && runLine(data.last_run);
        if (run) document.querySelector("#segments .body").appendChild(run);
        return;
      }
      var total = 0;
      list.forEach(function (sg) { total += sg.size || 0; });
      var features = data.features && data.features.length ? data.features : Object.keys(list[0].centroid || {});
      var sizes = h("ol", { class: "bars", "aria-label": "Users per segment" }, list.map(function (sg) {
        var share = total ? (sg.size || 0) / total : 0;
        var fill = h("div", { class: "bar-fill" });
        fill.style.width = (share * 100).toFixed(1) + "%";
        return h("li", { "data-segment": sg.name },
          h("div", { class: "bar-label" }, h("strong", { text: sg.name }),
            h("span", { text: num(sg.size) + " users · " + pct(share) })),
          h("div", { class: "bar-track", role: "presentation" }, fill));
      }));
      function centroidTable(kind) {
        var std = kind === "centroid";
        var rows = list.map(function (sg) {
          var values = sg[kind] || {};
          return h("tr", null, h("th", { scope: "row", text: sg.name }), features.map(function (f) {
            var v = values[f];
            var td = h("td", { text: std ? signedFixed(v) : fixed(v, f === "revenue" ? 2 : 1) });
            if (std && typeof v === "number") td.classList.add(v >= 0.5 ? "hi" : v <= -0.5 ? "lo" : "mid");
            return td;
          }));
        });
        return h("div", { class: "scroll" }, h("table", { class: "centroids " + kind, "aria-describedby": "segments-note" },
          h("caption", { text: std ? "Centroids, standardized (log1p, then sd from the mean of all users)" : "Raw means per segment" }),
          h("thead", null, h("tr", null, h("th", { scope: "col", text: "Segment" }),
            features.map(function (f) { return h("th", { scope: "col", text: FEATURE_LABELS[f] || f }); }))),
          h("tbody", null, rows)));
      }
      body("segments", [
        h("p", { class: "meta", text: "Trained " + (data.trained_at ? shortTime(data.trained_at) + " UTC" : "?") + " · k = " + (data.k || list.length) +
          " · silhouette " + fixed(data.silhouette, 2) + " · " + num(total) + " users" }),
        runLine(data.last_run),
        sizes,
        h("p", { class: "help", id: "segments-note",
          text: "Standardized: 0 is the average user, +1 one standard deviation above (bold blue), −1 below (muted). Raw: the segment's mean of each feature." }),
        centroidTable("centroid"),
        centroidTable("means"),
      ]);
    }).catch(function (err) { failed("segments", err); });
  }

  // ---- tracking plan: violations per event, rule and field ---------------------------------
  // "2026-11-30T22:10:00Z" -> "2026-11-30 22:10" (UTC; the full time in the title)
  function shortTime(iso) {
    if (!iso) return "—";
    var m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(String(iso));
    return m ? m[1] + " " + m[2] : String(iso);
  }

  function loadTracking() {
    busy("tracking");
    var days = $("#tracking-days").value;
    return api("v1/reports/tracking?days=" + encodeURIComponent(days)).then(function (res) {
      var list = res.data && res.data.violations;
      if (res.missing || !list || !list.length) return empty("tracking", res);
      var rows = list.map(function (v) {
        var sample = v.sample || {};
        return h("tr", null,
          h("th", { scope: "row", text: v.event }),
          h("td", { class: "left" }, h("code", { text: v.rule })),
          h("td", { class: "left" }, h("code", { text: v.field })),
          h("td", { text: num(v.violations) }),
          h("td", { text: num(v.events) }),
          h("td", v.blocked ? { class: "anomaly", text: num(v.blocked) } : { text: num(v.blocked) }),
          h("td", { text: shortTime(v.last_seen), title: v.last_seen || null }),
          h("td", { class: "sample" },
            sample.description ? h("span", { text: sample.description }) : null,
            sample.value !== null && sample.value !== undefined ? h("code", { text: " " + sample.value }) : null,
            sample.message_id ? h("span", { class: "mid", text: " · " + sample.message_id }) : null));
      });
      body("tracking", [h("p", { class: "help", id: "tracking-note",
        text: "Last " + days + " days. Blocked: refused at ingest (block mode); the others were accepted and reported. Sample: the latest violation. Times in UTC." }),
      h("div", { class: "scroll" }, h("table", { "aria-describedby": "tracking-note" },
        h("caption", { text: "Violations per event, rule and field" }),
        h("thead", null, h("tr", null,
          ["Event", "Rule", "Field", "Violations", "Events", "Blocked", "Last seen (UTC)", "Sample"]
            .map(function (c) {
              return h("th", { scope: "col", text: c, class: /^(Rule|Field|Sample)$/.test(c) ? "left" : null });
            }))),
        h("tbody", null, rows)))]);
    }).catch(function (err) { failed("tracking", err); });
  }

  // ---- dead letters: each DLQ's size, then the latest entries with their reasons ------------
  // The entries are what the process and deliver functions recorded when a message went
  // to a DLQ; the sizes are GetQueueAttributes' (nothing is received from a DLQ, D40).
  function loadDeadLetters() {
    busy("deadletters");
    return api("v1/reports/dead-letters?limit=50").then(function (res) {
      var data = res.data;
      if (res.missing || !data) return empty("deadletters", res);
      var sizes = h("ul", { class: "sizes", "aria-label": "Messages in each dead-letter queue now" },
        (data.queues || []).map(function (q) {
          var n = q.messages || 0;
          return h("li", { class: n ? "full" : null, "data-queue": q.queue },
            h("strong", { text: q.queue }), " DLQ: " + num(n) + (n === 1 ? " message" : " messages"));
        }));
      var list = data.dead_letters || [];
      if (!list.length) {
        var text = document.querySelector("#deadletters .body").getAttribute("data-empty");
        return body("deadletters", [sizes, h("p", { class: "empty", text: text })]);
      }
      var rows = list.map(function (e) {
        var moved = e.moved_by === "redrive"
          ? "after " + num(e.receive_count) + " receives"
          : "at once" + (typeof e.receive_count === "number" ? " (receive " + num(e.receive_count) + ")" : "");
        return h("tr", { "data-message-id": e.message_id },
          h("th", { scope: "row", text: shortTime(e.at), title: e.at || null }),
          h("td", { class: "left", text: e.queue }),
          h("td", { class: "left" }, h("code", { text: e.group })),
          h("td", { class: "left", text: moved }),
          h("td", { class: "reason" }, h("code", { text: e.error_type }), " " + (e.error || "")),
          h("td", { class: "body" }, h("code", { text: e.body }),
            e.truncated ? h("span", { class: "help", text: " … " + num(e.body_bytes) + " bytes" }) : null));
      });
      body("deadletters", [sizes,
        h("p", { class: "help", id: "deadletters-note",
          text: "Newest first, kept " + (data.retention_days || 14) + " days. At once: the function moved the message itself (a body it cannot read, an action that failed for good); after N receives: it failed on its last allowed attempt and SQS moved it. Times in UTC." }),
        h("div", { class: "scroll" }, h("table", { "aria-describedby": "deadletters-note" },
          h("caption", { text: "Recent dead-lettered events and actions" }),
          h("thead", null, h("tr", null,
            ["When (UTC)", "Queue", "Group (user)", "Moved", "Reason", "Body"].map(function (c, i) {
              return h("th", { scope: "col", text: c, class: i ? "left" : null });
            }))),
          h("tbody", null, rows)))]);
    }).catch(function (err) { failed("deadletters", err); });
  }

  // ---- start --------------------------------------------------------------------------------
  function loadAll() {
    $("#auth").hidden = true;
    $("#main").hidden = false;
    $("#signout").hidden = false;
    status("Loading…");
    var started = performance.now();
    Promise.all([loadExperiments(), loadTriggers(), loadCohorts(), loadFunnel(), loadSegments(), loadTracking(), loadDeadLetters()]).then(function () {
      mark("nudge:loaded");
      if (!$("#main").hidden) status("Updated " + new Date().toLocaleTimeString() + " in " + Math.round(performance.now() - started) + " ms");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("#key-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var key = $("#key").value.trim();
      if (!key) { $("#key-error").textContent = "Enter the admin key."; return; }
      try { sessionStorage.setItem(KEY, key); } catch (e) { memo = key; }
      $("#key").value = "";
      loadAll();
    });
    $("#signout").addEventListener("click", function () { askForKey(""); });
    $("#trigger-days").addEventListener("change", loadTriggers);
    $("#tracking-days").addEventListener("change", loadTracking);
    document.querySelectorAll("input[name=period]").forEach(function (r) { r.addEventListener("change", loadCohorts); });
    $("#funnel-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadFunnel(); });
    if (getKey()) loadAll(); else askForKey("");
  });
})();
