// orthoreg radiograph editor: an SVG overlay over the image, plain JavaScript, no framework, no CDN.
// Shapes are stored as data in image pixel coordinates (origin at the image's top-left corner).
// The page's data arrives in a <script type="application/json"> block (CSP: no inline script).
(function () {
  "use strict";

  var root = document.getElementById("imaging-editor");
  var dataNode = document.getElementById("imaging-editor-data");
  if (!root || !dataNode) return;

  var SVGNS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(dataNode.textContent);
  var csrf = root.dataset.csrf;
  var image = data.image;
  var urls = data.urls;

  var stage = document.getElementById("imaging-stage");
  var svg = document.getElementById("imaging-overlay");
  var picture = svg.querySelector(".imaging-picture");
  var statusLine = document.getElementById("imaging-status");
  var list = document.getElementById("annotation-list");
  var panel = document.getElementById("measurement-panel");
  var inputs = {
    colour: document.getElementById("ann-colour"),
    dashed: document.getElementById("ann-dashed"),
    label: document.getElementById("ann-label"),
    region: document.getElementById("ann-region"),
    brightness: document.getElementById("view-brightness"),
    contrast: document.getElementById("view-contrast")
  };
  var marker = {
    form: document.getElementById("marker-form"),
    px: document.getElementById("marker-px"),
    mm: document.getElementById("marker-mm"),
    cancel: document.getElementById("marker-cancel"),
    points: null
  };

  var HINTS = {
    select: "Click a shape to select it; drag to move it or its handles; Delete removes it. Drag the image to pan, scroll to zoom.",
    arrow: "Arrow: drag from the tail to the point.",
    ellipse: "Ellipse: drag across the area to encircle.",
    circle: "Circle: drag from the centre outward.",
    caliper: "Caliper: drag from one edge to the other; the length shows as you drag.",
    text: "Text: type the label in the Label box, then click where it goes.",
    jsw: "Joint space width: drag along the joint, starting at its MEDIAL end.",
    calibrate: "Calibrate: drag from one end of the marker to the other, then give its length in mm."
  };
  var DRAWING = ["arrow", "ellipse", "circle", "caliper", "jsw", "calibrate"];
  var KEYS = { v: "select", a: "arrow", e: "ellipse", c: "circle", l: "caliper", t: "text", j: "jsw" };

  var state = {
    tool: "select",
    annotations: (data.annotations || []).slice(),
    measurements: (data.measurements || []).slice(),
    selected: null, // annotation id
    view: { x: 0, y: 0, w: image.width, h: image.height },
    drag: null,
    spacing: image.spacing // [row mm, col mm] or null
  };

  var layers = {};
  ["measure", "shapes", "draft", "handles"].forEach(function (name) {
    layers[name] = make("g", { "class": "layer-" + name }, svg);
  });

  // --- helpers --------------------------------------------------------------------------------------

  function make(name, attrs, parent) {
    var node = document.createElementNS(SVGNS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function round(v) { return Math.round(v * 100) / 100; }

  function say(message, kind) {
    statusLine.textContent = message;
    statusLine.className = "imaging-status small" + (kind ? " " + kind : "");
  }

  function api(url, method, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) {
          throw new Error(json.error || ("The server answered " + response.status + "; nothing was saved."));
        }
        return json;
      });
    });
  }

  function idUrl(template, id) { return template.replace(/\/0\/(?=[^/]*\/?$)/, "/" + id + "/"); }

  function pointer(event) {
    var ctm = svg.getScreenCTM();
    var p = svg.createSVGPoint();
    p.x = event.clientX;
    p.y = event.clientY;
    p = p.matrixTransform(ctm.inverse());
    return { x: p.x, y: p.y };
  }

  // Image units per screen pixel, so that strokes, handles and text keep their size at any zoom.
  function unit() {
    var ctm = svg.getScreenCTM();
    return ctm && ctm.a ? 1 / ctm.a : 1;
  }

  function lengthOf(x1, y1, x2, y2) {
    var dx = x2 - x1, dy = y2 - y1;
    if (state.spacing) {
      var mm = Math.hypot(dx * state.spacing[1], dy * state.spacing[0]);
      return { value: mm, unit: "mm", text: mm.toFixed(2) + " mm" };
    }
    var px = Math.hypot(dx, dy);
    return { value: px, unit: "px", text: px.toFixed(1) + " px (uncalibrated)" };
  }

  function valueText(v) {
    return v && v.value !== null && v.value !== undefined ? v.text : "not measurable";
  }

  function arrowHead(x1, y1, x2, y2, size) {
    var angle = Math.atan2(y2 - y1, x2 - x1), spread = 25 * Math.PI / 180;
    return [
      [x2, y2],
      [x2 - size * Math.cos(angle - spread), y2 - size * Math.sin(angle - spread)],
      [x2 - size * Math.cos(angle + spread), y2 - size * Math.sin(angle + spread)]
    ].map(function (p) { return round(p[0]) + "," + round(p[1]); }).join(" ");
  }

  function find(id) {
    for (var i = 0; i < state.annotations.length; i++) {
      if (state.annotations[i].id === id) return state.annotations[i];
    }
    return null;
  }

  function currentMeasurement() {
    return state.measurements.length ? state.measurements[0] : null;
  }

  // --- drawing shapes -------------------------------------------------------------------------------

  function strokeAttrs(colour, dashed, u) {
    return {
      stroke: colour,
      "stroke-width": round(2 * u),
      "stroke-dasharray": dashed ? round(8 * u) + " " + round(6 * u) : "none",
      fill: "none",
      "stroke-linecap": "round"
    };
  }

  function textNode(parent, x, y, text, colour, u) {
    var node = make("text", {
      x: round(x), y: round(y), fill: colour, "font-size": round(15 * u), "class": "ann-text",
      "stroke-width": round(3 * u)
    }, parent);
    node.textContent = text;
    return node;
  }

  // Draw one shape (annotation data, or a draft) into a group; `hit` adds a wide invisible stroke to click on.
  function drawShape(group, a, u, hit) {
    var g = a.geometry, colour = a.colour || inputs.colour.value;
    var attrs = strokeAttrs(colour, a.dashed, u);
    var body = [];
    if (a.kind === "arrow" || a.kind === "caliper" || a.kind === "jsw" || a.kind === "calibrate") {
      body.push(["line", { x1: g.x1, y1: g.y1, x2: g.x2, y2: g.y2 }]);
    } else if (a.kind === "circle") {
      body.push(["circle", { cx: g.cx, cy: g.cy, r: Math.max(g.r, 0.1) }]);
    } else if (a.kind === "ellipse") {
      body.push(["ellipse", {
        cx: g.cx, cy: g.cy, rx: Math.max(g.rx, 0.1), ry: Math.max(g.ry, 0.1),
        transform: "rotate(" + (g.angle || 0) + " " + g.cx + " " + g.cy + ")"
      }]);
    }
    body.forEach(function (item) {
      if (hit) {
        var halo = make(item[0], Object.assign({}, item[1], { "class": "ann-halo", fill: "none", stroke: "none", "stroke-width": round(7 * u) }), group);
        halo.setAttribute("stroke-linecap", "round");
        make(item[0], Object.assign({}, item[1], { "class": "ann-hit", "stroke-width": round(14 * u) }), group);
      }
      make(item[0], Object.assign({}, item[1], attrs), group);
    });
    if (a.kind === "arrow") {
      make("polygon", { points: arrowHead(g.x1, g.y1, g.x2, g.y2, 16 * u), fill: colour }, group);
    }
    if (a.kind === "caliper" || a.kind === "calibrate") {
      var dx = g.x2 - g.x1, dy = g.y2 - g.y1, len = Math.hypot(dx, dy) || 1;
      var nx = -dy / len * 7 * u, ny = dx / len * 7 * u;
      [[g.x1, g.y1], [g.x2, g.y2]].forEach(function (p) {
        make("line", Object.assign({ x1: p[0] - nx, y1: p[1] - ny, x2: p[0] + nx, y2: p[1] + ny }, strokeAttrs(colour, false, u)), group);
      });
      var label = a.kind === "calibrate" ? Math.hypot(dx, dy).toFixed(1) + " px" : lengthOf(g.x1, g.y1, g.x2, g.y2).text;
      if (a.kind === "caliper" && g.region) label += " · " + g.region;
      textNode(group, (g.x1 + g.x2) / 2 + 8 * u, (g.y1 + g.y2) / 2 - 6 * u, label, colour, u);
    }
    if (a.kind === "jsw") {
      var span = Math.hypot(g.x2 - g.x1, g.y2 - g.y1) || 1;
      var ox = -(g.x2 - g.x1) / span, oy = -(g.y2 - g.y1) / span; // outward, beyond the medial end
      var medial = textNode(group, g.x1 + ox * 10 * u, g.y1 + oy * 10 * u + 5 * u, "medial", colour, u);
      medial.setAttribute("text-anchor", ox >= 0 ? "start" : "end");
      medial.setAttribute("class", "ann-text jsw-end");
    }
    if (a.kind === "text") {
      var t = textNode(group, g.x, g.y, a.label || "", colour, u);
      if (hit) {
        t.setAttribute("class", "ann-text ann-hit-text");
      }
    } else if (a.label && a.kind !== "jsw" && a.kind !== "calibrate") {
      var at = labelAnchor(a);
      var right = at[0] > state.view.x + 0.6 * state.view.w;
      textNode(group, at[0] + (right ? -6 : 6) * u, at[1] - 6 * u, a.label, colour, u).setAttribute("text-anchor", right ? "end" : "start");
    }
  }

  function labelAnchor(a) {
    var g = a.geometry;
    if (a.kind === "arrow") return [g.x1, g.y1];
    if (a.kind === "caliper") return [g.x2, g.y2];
    if (a.kind === "circle") return [g.cx + g.r * 0.71, g.cy - g.r * 0.71];
    if (a.kind === "ellipse") return [g.cx + g.rx * 0.71, g.cy - g.ry * 0.71];
    return [g.x, g.y];
  }

  function handlesOf(a) {
    var g = a.geometry;
    if (a.kind === "arrow" || a.kind === "caliper") return [["p1", g.x1, g.y1], ["p2", g.x2, g.y2]];
    if (a.kind === "circle") return [["r", g.cx + g.r, g.cy]];
    if (a.kind === "ellipse") return [["rx", g.cx + g.rx, g.cy], ["ry", g.cx, g.cy + g.ry]];
    return [];
  }

  function renderMeasurement(u) {
    clear(layers.measure);
    var m = currentMeasurement();
    if (!m) return;
    var cyan = "#00e5ff";
    if (m.method === "semi_auto" && m.line && m.line.length === 4) {
      var l = m.line;
      drawShape(layers.measure, { kind: "jsw", geometry: { x1: l[0], y1: l[1], x2: l[2], y2: l[3] }, colour: "#ff6bcb", dashed: true }, u, false);
      ["a", "b"].forEach(function (key) {
        var segment = [];
        var flush = function () {
          if (segment.length > 1) {
            make("polyline", { points: segment.join(" "), fill: "none", stroke: cyan, "stroke-width": round(1.6 * u), opacity: 0.95 }, layers.measure);
          }
          segment = [];
        };
        (m.profiles || []).forEach(function (p) {
          if (p[key]) segment.push(round(p[key][0]) + "," + round(p[key][1]));
          else flush();
        });
        flush();
      });
    }
    (m.calipers || []).forEach(function (c) {
      var p = c.points;
      make("line", Object.assign({ x1: p[0], y1: p[1], x2: p[2], y2: p[3] }, strokeAttrs(cyan, false, u)), layers.measure);
    });
  }

  function render() {
    var u = unit();
    clear(layers.shapes);
    clear(layers.handles);
    renderMeasurement(u);
    state.annotations.forEach(function (a) {
      var group = make("g", { "class": "ann" + (a.id === state.selected ? " selected" : ""), "data-id": a.id }, layers.shapes);
      drawShape(group, a, u, true);
    });
    var chosen = find(state.selected);
    if (chosen) {
      handlesOf(chosen).forEach(function (h) {
        make("circle", { cx: h[1], cy: h[2], r: round(6 * u), "class": "handle", "data-handle": h[0], "stroke-width": round(1.5 * u) }, layers.handles);
      });
    }
    var m = currentMeasurement();
    if (m && m.method === "semi_auto" && m.line && state.tool === "select") {
      [["jsw1", m.line[0], m.line[1]], ["jsw2", m.line[2], m.line[3]]].forEach(function (h) {
        make("rect", {
          x: h[1] - 5 * u, y: h[2] - 5 * u, width: round(10 * u), height: round(10 * u), "class": "handle",
          "data-handle": h[0], "stroke-width": round(1.5 * u)
        }, layers.handles);
      });
    }
  }

  // --- side panels ----------------------------------------------------------------------------------

  var KIND_NAMES = { arrow: "Arrow", ellipse: "Ellipse", circle: "Circle", caliper: "Caliper", text: "Text" };

  function renderList() {
    clear(list);
    if (!state.annotations.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "None yet: choose a tool above and draw on the image.";
      list.appendChild(empty);
      return;
    }
    state.annotations.forEach(function (a) {
      var li = document.createElement("li");
      li.dataset.id = a.id;
      if (a.id === state.selected) li.className = "selected";
      var sw = make("svg", { width: 12, height: 12, "class": "swatch", "aria-hidden": "true" });
      make("rect", { width: 12, height: 12, rx: 2, fill: a.colour }, sw);
      li.appendChild(sw);
      var text = document.createElement("span");
      text.className = "grow";
      var detail = a.kind === "caliper" && a.length ? " " + a.length.text : "";
      if (a.geometry.region) detail += " (" + a.geometry.region + ")";
      text.textContent = KIND_NAMES[a.kind] + (a.dashed ? ", dashed" : "") + detail + (a.label ? " — " + a.label : "");
      li.appendChild(text);
      var pick = document.createElement("button");
      pick.type = "button";
      pick.className = "btn btn-small";
      pick.textContent = "Select";
      pick.addEventListener("click", function () { select(a.id); });
      var del = document.createElement("button");
      del.type = "button";
      del.className = "btn btn-small btn-danger";
      del.textContent = "Delete";
      del.setAttribute("aria-label", "Delete " + KIND_NAMES[a.kind].toLowerCase());
      del.addEventListener("click", function () { remove(a.id); });
      li.appendChild(pick);
      li.appendChild(del);
      list.appendChild(li);
    });
  }

  function cell(row, text, tag) {
    var node = document.createElement(tag || "td");
    node.textContent = text;
    row.appendChild(node);
    return node;
  }

  function renderPanel() {
    clear(panel);
    var m = currentMeasurement();
    if (!m) {
      var none = document.createElement("p");
      none.className = "small muted";
      none.textContent = "No measurement yet.";
      panel.appendChild(none);
      return;
    }
    var head = document.createElement("p");
    head.className = "small";
    var badge = document.createElement("span");
    badge.className = "badge " + (m.accepted ? "ok" : "warn");
    badge.textContent = m.accepted ? "accepted" : "draft: check, then accept";
    head.appendChild(document.createTextNode(m.method_label + " "));
    head.appendChild(badge);
    panel.appendChild(head);
    var table = document.createElement("table");
    table.className = "jsw-table";
    table.id = "jsw-table";
    [["Medial third", "medial"], ["Central third", "central"], ["Lateral third", "lateral"], ["Minimum", "minimum"]].forEach(function (r) {
      var row = document.createElement("tr");
      cell(row, r[0], "th");
      cell(row, valueText(m[r[1]])).dataset.value = r[1];
      table.appendChild(row);
    });
    panel.appendChild(table);
    if (m.count) {
      var count = document.createElement("p");
      count.className = "small muted";
      count.textContent = m.method === "semi_auto"
        ? m.measurable + " of " + m.count + " profiles measurable." + (m.unit === "px" ? " Uncalibrated: pixels." : "")
        : m.count + " caliper" + (m.count === 1 ? "" : "s") + ".";
      panel.appendChild(count);
    }
    if (m.notes && m.notes.length) {
      var notes = document.createElement("ul");
      notes.className = "jsw-notes small";
      m.notes.forEach(function (n) { var li = document.createElement("li"); li.textContent = n; notes.appendChild(li); });
      panel.appendChild(notes);
    }
    var actions = document.createElement("div");
    actions.className = "row small";
    if (!m.accepted) {
      var accept = document.createElement("button");
      accept.type = "button";
      accept.className = "btn btn-small btn-primary";
      accept.id = "jsw-accept";
      accept.textContent = "Accept";
      accept.addEventListener("click", function () { decide(m.id, "accept"); });
      actions.appendChild(accept);
    }
    var drop = document.createElement("button");
    drop.type = "button";
    drop.className = "btn btn-small btn-danger";
    drop.textContent = "Delete";
    drop.addEventListener("click", function () { decide(m.id, "delete"); });
    actions.appendChild(drop);
    panel.appendChild(actions);
    if (state.measurements.length > 1) {
      var older = document.createElement("ul");
      older.className = "jsw-history small muted";
      state.measurements.slice(1).forEach(function (o) {
        var li = document.createElement("li");
        li.textContent = o.method_label + (o.accepted ? " (accepted)" : "") + ": minimum " + valueText(o.minimum);
        older.appendChild(li);
      });
      panel.appendChild(older);
    }
  }

  function refresh() {
    render();
    renderList();
    renderPanel();
  }

  // --- saving ---------------------------------------------------------------------------------------

  function replaceAnnotation(saved) {
    for (var i = 0; i < state.annotations.length; i++) {
      if (state.annotations[i].id === saved.id) { state.annotations[i] = saved; return; }
    }
    state.annotations.push(saved);
  }

  function create(kind, geometry) {
    var body = {
      kind: kind, geometry: geometry, colour: inputs.colour.value, dashed: inputs.dashed.checked,
      label: inputs.label.value
    };
    if (kind === "caliper" && inputs.region.value) body.geometry.region = inputs.region.value;
    say("Saving…");
    return api(urls.annotations, "POST", body).then(function (json) {
      replaceAnnotation(json.annotation);
      state.selected = json.annotation.id;
      if (kind === "text") inputs.label.value = "";
      say(KIND_NAMES[kind] + " saved.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); refresh(); });
  }

  function update(a, changes) {
    say("Saving…");
    return api(idUrl(urls.annotation, a.id), "PATCH", changes).then(function (json) {
      replaceAnnotation(json.annotation);
      say("Saved.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); refresh(); });
  }

  function remove(id) {
    var a = find(id);
    if (!a) return;
    api(idUrl(urls.annotation, id), "DELETE").then(function () {
      state.annotations = state.annotations.filter(function (x) { return x.id !== id; });
      if (state.selected === id) state.selected = null;
      say(KIND_NAMES[a.kind] + " deleted.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); });
  }

  function measure(line) {
    say("Measuring…");
    return api(urls.measure, "POST", { line: line.map(round) }).then(function (json) {
      state.measurements = [json.measurement].concat(state.measurements.filter(function (m) {
        return m.accepted || m.method !== "semi_auto";
      }));
      var m = json.measurement;
      setTool("select");
      say(m.minimum.value === null && m.medial.value === null && m.lateral.value === null
        ? "Not measurable along this line: no joint space was found." : "Measured: check the cyan margins, then accept.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); refresh(); });
  }

  function decide(id, action) {
    var url = idUrl(action === "accept" ? urls.accept : urls.delete_measurement, id);
    api(url, "POST", {}).then(function (json) {
      state.measurements = json.measurements;
      say(action === "accept" ? "Measurement accepted." : "Measurement deleted.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); });
  }

  function calibrate(points, knownMm) {
    say("Calibrating…");
    return api(urls.calibration, "POST", { source: "manual", points: points.map(round), known_mm: knownMm }).then(function (json) {
      state.spacing = json.spacing;
      state.annotations = json.annotations;
      state.measurements = json.measurements;
      var label = document.getElementById("calibration-label");
      if (label) label.textContent = json.calibration;
      var badge = document.getElementById("calibration-badge");
      if (badge) { badge.textContent = json.calibration; badge.className = "badge ok"; }
      marker.form.classList.add("hidden");
      marker.points = null;
      clear(layers.draft);
      setTool("select");
      say("Calibrated: " + json.calibration + ". Lengths are now in mm.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); });
  }

  // --- tools and pointer ----------------------------------------------------------------------------

  function setTool(tool) {
    state.tool = tool;
    root.querySelectorAll(".tool").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    });
    stage.classList.toggle("tool-draw", tool !== "select");
    stage.classList.toggle("tool-select", tool === "select");
    say(HINTS[tool] || "");
    render();
  }

  function select(id) {
    state.selected = id;
    var a = find(id);
    if (a) {
      inputs.colour.value = a.colour;
      inputs.dashed.checked = !!a.dashed;
      inputs.label.value = a.label || "";
      inputs.region.value = a.geometry.region || "";
    }
    refresh();
  }

  function draftGeometry(kind, p0, p1) {
    if (kind === "ellipse") {
      return { cx: (p0.x + p1.x) / 2, cy: (p0.y + p1.y) / 2, rx: Math.abs(p1.x - p0.x) / 2, ry: Math.abs(p1.y - p0.y) / 2, angle: 0 };
    }
    if (kind === "circle") return { cx: p0.x, cy: p0.y, r: Math.hypot(p1.x - p0.x, p1.y - p0.y) };
    return { x1: p0.x, y1: p0.y, x2: p1.x, y2: p1.y };
  }

  function bigEnough(kind, g) {
    var u = unit();
    if (kind === "ellipse") return g.rx > 2 * u && g.ry > 2 * u;
    if (kind === "circle") return g.r > 3 * u;
    return Math.hypot(g.x2 - g.x1, g.y2 - g.y1) > 6 * u;
  }

  function rounded(g) {
    var out = {};
    Object.keys(g).forEach(function (k) { out[k] = typeof g[k] === "number" ? round(g[k]) : g[k]; });
    return out;
  }

  function moved(a, dx, dy) {
    var g = Object.assign({}, a.geometry);
    ["x", "x1", "x2", "cx"].forEach(function (k) { if (k in g) g[k] += dx; });
    ["y", "y1", "y2", "cy"].forEach(function (k) { if (k in g) g[k] += dy; });
    return g;
  }

  function reshaped(a, handle, p) {
    var g = Object.assign({}, a.geometry);
    if (handle === "p1") { g.x1 = p.x; g.y1 = p.y; }
    if (handle === "p2") { g.x2 = p.x; g.y2 = p.y; }
    if (handle === "r") g.r = Math.max(Math.hypot(p.x - g.cx, p.y - g.cy), 1);
    if (handle === "rx") g.rx = Math.max(Math.abs(p.x - g.cx), 1);
    if (handle === "ry") g.ry = Math.max(Math.abs(p.y - g.cy), 1);
    return g;
  }

  svg.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    var p = pointer(event);
    var target = event.target;
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
    if (state.tool === "text") {
      var text = inputs.label.value.trim();
      if (!text) { say("Type the label in the Label box first, then click where it goes.", "error"); inputs.label.focus(); return; }
      create("text", { x: round(p.x), y: round(p.y) });
      return;
    }
    if (DRAWING.indexOf(state.tool) >= 0) {
      state.drag = { mode: "draw", kind: state.tool, start: p, current: p };
      return;
    }
    var handle = target.getAttribute && target.getAttribute("data-handle");
    if (handle) {
      state.drag = { mode: "handle", handle: handle, start: p, current: p };
      return;
    }
    var group = target.closest ? target.closest("g.ann") : null;
    if (group) {
      var id = parseInt(group.getAttribute("data-id"), 10);
      select(id);
      state.drag = { mode: "move", id: id, start: p, current: p };
      return;
    }
    if (state.selected !== null) { state.selected = null; refresh(); }
    state.drag = { mode: "pan", start: { x: event.clientX, y: event.clientY }, view: Object.assign({}, state.view), scale: unit() };
    stage.classList.add("panning");
  });

  svg.addEventListener("pointermove", function (event) {
    var drag = state.drag;
    if (!drag) return;
    if (drag.mode === "pan") {
      state.view.x = drag.view.x - (event.clientX - drag.start.x) * drag.scale;
      state.view.y = drag.view.y - (event.clientY - drag.start.y) * drag.scale;
      applyView();
      return;
    }
    var p = pointer(event);
    drag.current = p;
    var u = unit();
    clear(layers.draft);
    if (drag.mode === "draw") {
      var g = draftGeometry(drag.kind, drag.start, p);
      drawShape(layers.draft, { kind: drag.kind, geometry: g, colour: drag.kind === "jsw" ? "#ff6bcb" : inputs.colour.value, dashed: inputs.dashed.checked || drag.kind === "jsw" }, u, false);
      if (drag.kind === "caliper" || drag.kind === "calibrate") say((drag.kind === "caliper" ? "Length " : "Marker ") + (drag.kind === "caliper" ? lengthOf(g.x1, g.y1, g.x2, g.y2).text : Math.hypot(g.x2 - g.x1, g.y2 - g.y1).toFixed(1) + " px"));
    } else if (drag.mode === "move" || drag.mode === "handle") {
      var preview = previewOf(drag, p);
      if (preview) {
        layers.shapes.querySelectorAll("g.ann.selected").forEach(function (node) { node.classList.add("hidden"); });
        drawShape(layers.draft, preview, u, false);
        if (preview.kind === "caliper") say("Length " + lengthOf(preview.geometry.x1, preview.geometry.y1, preview.geometry.x2, preview.geometry.y2).text);
      }
    }
  });

  function previewOf(drag, p) {
    if (drag.mode === "handle" && (drag.handle === "jsw1" || drag.handle === "jsw2")) {
      var m = currentMeasurement();
      var l = m.line.slice();
      if (drag.handle === "jsw1") { l[0] = p.x; l[1] = p.y; } else { l[2] = p.x; l[3] = p.y; }
      return { kind: "jsw", geometry: { x1: l[0], y1: l[1], x2: l[2], y2: l[3] }, colour: "#ff6bcb", dashed: true };
    }
    var a = find(state.selected);
    if (!a) return null;
    var g = drag.mode === "move" ? moved(a, p.x - drag.start.x, p.y - drag.start.y) : reshaped(a, drag.handle, p);
    return Object.assign({}, a, { geometry: g });
  }

  function endDrag(event) {
    var drag = state.drag;
    state.drag = null;
    stage.classList.remove("panning");
    if (!drag || drag.mode === "pan") return;
    var p = event && event.type === "pointerup" ? pointer(event) : drag.current;
    clear(layers.draft);
    if (drag.mode === "draw") {
      var g = draftGeometry(drag.kind, drag.start, p);
      if (!bigEnough(drag.kind, g)) { render(); say("Too small: drag further. " + HINTS[drag.kind], "error"); return; }
      if (drag.kind === "jsw") { measure([g.x1, g.y1, g.x2, g.y2]); return; }
      if (drag.kind === "calibrate") {
        marker.points = [g.x1, g.y1, g.x2, g.y2];
        drawShape(layers.draft, { kind: "calibrate", geometry: g, colour: "#7CFC00" }, unit(), false);
        marker.px.textContent = Math.hypot(g.x2 - g.x1, g.y2 - g.y1).toFixed(1);
        marker.form.classList.remove("hidden");
        marker.mm.focus();
        say("Now give the marker's real length in mm (Calibration panel).");
        return;
      }
      create(drag.kind, rounded(g));
      return;
    }
    var moveBy = Math.hypot(p.x - drag.start.x, p.y - drag.start.y);
    if (moveBy < 0.5 * unit()) { render(); return; }
    var preview = previewOf(drag, p);
    if (!preview) { render(); return; }
    if (preview.kind === "jsw") {
      var pg = preview.geometry;
      measure([pg.x1, pg.y1, pg.x2, pg.y2]);
      return;
    }
    update(find(state.selected), { geometry: rounded(preview.geometry) });
  }

  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", function () { state.drag = null; clear(layers.draft); render(); });

  // --- zoom and pan ---------------------------------------------------------------------------------

  function applyView() {
    var v = state.view;
    svg.setAttribute("viewBox", [v.x, v.y, v.w, v.h].map(round).join(" "));
  }

  function zoom(factor, centre) {
    var v = state.view;
    var c = centre || { x: v.x + v.w / 2, y: v.y + v.h / 2 };
    var w = Math.min(Math.max(v.w / factor, 20), image.width * 4);
    var h = w * v.h / v.w;
    state.view = { x: c.x - (c.x - v.x) * w / v.w, y: c.y - (c.y - v.y) * h / v.h, w: w, h: h };
    applyView();
    render();
  }

  function fit() {
    state.view = { x: 0, y: 0, w: image.width, h: image.height };
    applyView();
    render();
  }

  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, pointer(event));
  }, { passive: false });

  root.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      var how = button.dataset.zoom;
      if (how === "fit") fit(); else zoom(how === "in" ? 1.4 : 1 / 1.4);
    });
  });

  function applyPicture() {
    picture.style.filter = "brightness(" + inputs.brightness.value / 100 + ") contrast(" + inputs.contrast.value / 100 + ")";
  }
  inputs.brightness.addEventListener("input", applyPicture);
  inputs.contrast.addEventListener("input", applyPicture);

  // --- toolbar and keyboard -------------------------------------------------------------------------

  root.querySelectorAll(".tool").forEach(function (button) {
    button.addEventListener("click", function () { setTool(button.dataset.tool); });
  });

  function styleChanged() {
    var a = find(state.selected);
    if (!a) return;
    var changes = { colour: inputs.colour.value, dashed: inputs.dashed.checked, label: inputs.label.value };
    if (a.kind === "caliper") changes.geometry = Object.assign({}, a.geometry, { region: inputs.region.value });
    update(a, changes);
  }
  inputs.colour.addEventListener("change", styleChanged);
  inputs.dashed.addEventListener("change", styleChanged);
  inputs.region.addEventListener("change", styleChanged);
  inputs.label.addEventListener("change", function () { if (find(state.selected)) styleChanged(); });

  marker.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var mm = parseFloat(marker.mm.value);
    if (!marker.points) { say("Draw the marker first (Calibrate tool).", "error"); return; }
    if (!(mm > 0)) { say("Give the marker's length in mm.", "error"); marker.mm.focus(); return; }
    calibrate(marker.points, mm);
  });
  marker.cancel.addEventListener("click", function () {
    marker.form.classList.add("hidden");
    marker.points = null;
    clear(layers.draft);
    setTool("select");
  });

  document.getElementById("measure-manual").addEventListener("click", function () {
    api(urls.measure_manual, "POST", {}).then(function (json) {
      state.measurements = [json.measurement].concat(state.measurements);
      say("Manual joint space width recorded from the calipers: check, then accept.", "ok");
      refresh();
    }).catch(function (error) { say(error.message, "error"); });
  });

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    if ((event.key === "Delete" || event.key === "Backspace") && state.selected !== null) {
      event.preventDefault();
      remove(state.selected);
    } else if (event.key === "Escape") {
      state.drag = null;
      clear(layers.draft);
      state.selected = null;
      setTool("select");
      refresh();
    } else if (event.key === "+" || event.key === "=") {
      zoom(1.4);
    } else if (event.key === "-") {
      zoom(1 / 1.4);
    } else if (event.key === "0") {
      fit();
    } else if (KEYS[event.key] && !event.ctrlKey && !event.metaKey && !event.altKey) {
      setTool(KEYS[event.key]);
    }
  });

  window.addEventListener("resize", render);
  setTool("select");
  refresh();
})();
