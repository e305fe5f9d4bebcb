// netpolgen report: the interactive graph. Data: the JSON in #report-data (netpolgen/explore/report.py).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var policies = {};
  data.policies.forEach(function (p) { policies[p.name] = p; });
  var workloads = {};
  data.workloads.forEach(function (w) { workloads[w.id] = w; });

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  // The details panel: the policies that select a workload, each with its rules and evidence.
  function showWorkload(id) {
    var w = workloads[id];
    var panel = document.getElementById("details");
    panel.innerHTML = "";
    if (!w) return;
    panel.appendChild(el("h3", w.id));
    panel.appendChild(el("p", "namespace " + w.namespace + ", " + w.kind));
    if (!w.policies.length) {
      panel.appendChild(el("p", "No policy selects it: all traffic to and from it is allowed.", "none"));
    }
    var list = el("ul");
    list.id = "selected-policies";
    w.policies.forEach(function (name) {
      var p = policies[name];
      var item = el("li");
      item.appendChild(el("code", name));
      item.className = "selected-policy";
      if (p) {
        item.appendChild(el("div", p.types.join(", ") + "; selects " + p.selector));
        var rules = el("ul");
        p.rules.forEach(function (r) {
          rules.appendChild(el("li", r.direction + " " + r.index + ": " + r.peers + " on " + r.ports +
            " — " + r.flows + " flows" + (r.last ? ", last " + r.last : "")));
        });
        item.appendChild(rules);
      }
      list.appendChild(item);
    });
    panel.appendChild(list);
    var seen = data.edges.filter(function (e) { return e.src === id || e.dst === id; });
    panel.appendChild(el("p", seen.length + " observed connection(s)"));
  }

  var container = document.getElementById("graph");
  if (typeof cytoscape !== "function" || !container) return;
  var elements = [];
  data.namespaces.forEach(function (ns) {
    elements.push({ group: "nodes", data: { id: "ns:" + ns, label: ns }, classes: "namespace" });
  });
  // Deterministic positions: namespaces side by side in rows, each a square grid of its
  // workloads, so that 100+ workloads stay readable and the same data draws the same page.
  var members = {};
  data.workloads.forEach(function (w) { (members[w.namespace] = members[w.namespace] || []).push(w); });
  var step = 110, x0 = 0, y0 = 0, rowHeight = 0, maxWidth = Math.max(1400, container.clientWidth * 1.6);
  data.namespaces.forEach(function (ns) {
    var list = members[ns] || [];
    var columns = Math.max(1, Math.ceil(Math.sqrt(list.length)));
    var width = columns * step, height = Math.ceil(list.length / columns) * step;
    if (x0 > 0 && x0 + width > maxWidth) { x0 = 0; y0 += rowHeight + 80; rowHeight = 0; }
    list.forEach(function (w, i) {
      var short = w.namespace !== "(outside)" && w.id.indexOf("/") >= 0 ? w.id.slice(w.id.indexOf("/") + 1) : w.id;
      elements.push({ group: "nodes", data: { id: w.id, label: short, parent: "ns:" + w.namespace },
                      position: { x: x0 + (i % columns) * step, y: y0 + Math.floor(i / columns) * step },
                      classes: w.policies.length ? "isolated" : "open" });
    });
    x0 += width + 80;
    rowHeight = Math.max(rowHeight, height);
  });
  data.edges.forEach(function (e, i) {
    elements.push({ group: "edges", data: { id: "e" + i, source: e.src, target: e.dst, label: e.port },
                    classes: e.allowed ? "allowed" : "denied" });
  });
  var cy = cytoscape({
    container: container,
    elements: elements,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: { "label": "data(label)", "font-size": 10, "background-color": "#3b6fb6",
        "width": 18, "height": 18, "text-valign": "bottom", "text-margin-y": 3 } },
      { selector: "node.open", style: { "background-color": "#d08a1f" } },
      { selector: "node.namespace", style: { "background-color": "#eef1f5", "background-opacity": 0.6,
        "border-color": "#9aa4b5", "border-width": 1, "text-valign": "top", "font-size": 12,
        "font-weight": "bold", "shape": "round-rectangle", "padding": 12 } },
      { selector: "edge", style: { "width": 1.5, "curve-style": "bezier", "opacity": 0.7, "target-arrow-shape": "triangle",
        "line-color": "#9aa4b5", "target-arrow-color": "#9aa4b5", "label": "data(label)", "font-size": 8,
        "text-rotation": "autorotate", "color": "#5b6475" } },
      { selector: "edge.denied", style: { "line-color": "#c0392b", "target-arrow-color": "#c0392b", "width": 2.5 } },
      { selector: ":selected", style: { "background-color": "#1f9d55", "line-color": "#1f9d55" } },
      { selector: ".faded", style: { "opacity": 0.15 } }
    ],
    layout: { name: "preset" }
  });
  cy.on("tap", "node", function (event) {
    var node = event.target;
    if (node.hasClass("namespace")) return;
    cy.elements().addClass("faded");
    node.closedNeighborhood().removeClass("faded");
    node.closedNeighborhood().parents().removeClass("faded");
    showWorkload(node.id());
  });
  cy.on("tap", function (event) {
    if (event.target === cy) { cy.elements().removeClass("faded"); }
  });
  Array.prototype.forEach.call(document.querySelectorAll(".ns-filter"), function (box) {
    box.addEventListener("change", function () {
      var node = cy.getElementById("ns:" + box.value);
      node.union(node.descendants()).style("display", box.checked ? "element" : "none");
    });
  });
  document.getElementById("search").addEventListener("input", function (event) {
    var text = event.target.value.toLowerCase();
    cy.nodes().removeClass("faded");
    if (!text) return;
    cy.nodes().forEach(function (n) {
      if (!n.hasClass("namespace") && n.id().toLowerCase().indexOf(text) < 0) n.addClass("faded");
    });
  });
  // report.html#select=<workload> selects it on load, as a click would (links, and the tests).
  var match = /^#select=(.*)$/.exec(window.location.hash);
  if (match) {
    var node = cy.getElementById(decodeURIComponent(match[1]));
    if (node.nonempty()) { node.select(); node.emit("tap"); }
  }
  cy.fit(undefined, 20);
  document.body.setAttribute("data-graph", "ready");
}());
