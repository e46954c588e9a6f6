"""The dashboard's stylesheet and script: written for it, served from this process (nothing from a
CDN, no build step)."""

from __future__ import annotations

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; --accent: #2457c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5rem; align-items: baseline; padding: .7rem 1.2rem;
         background: #fff; border-bottom: 1px solid var(--line); }
header strong { font-size: 1.05rem; }
header nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
header nav a.here { font-weight: 600; text-decoration: underline; }
main { padding: 1rem 1.2rem; max-width: 1200px; }
h1 { font-size: 1.2rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12.5px/1.4 ui-monospace, monospace; }
pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto;
      max-height: 20rem; }
form.filters { display: flex; gap: .6rem; align-items: end; flex-wrap: wrap; margin: .6rem 0; }
label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: .25rem .4rem; }
button { cursor: pointer; }
.counts { display: flex; gap: 2rem; flex-wrap: wrap; }
.counts table { width: auto; min-width: 14rem; }
.status { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: 12px;
          background: #e7eaf0; }
.status.succeeded { background: #d8f0dd; } .status.failed { background: #f7d9d9; }
.status.running { background: #dbe6fb; } .status.retrying { background: #fbecd0; }
.status.cancelled { background: #e4e4e4; }
.note { color: var(--muted); font-size: 12px; }
.flash { background: #fff8d6; border: 1px solid #eedc82; padding: .4rem .6rem; margin: .5rem 0; }
dl { display: grid; grid-template-columns: 10rem 1fr; gap: .2rem .8rem; background: #fff;
     padding: .6rem; border: 1px solid var(--line); }
dt { color: var(--muted); } dd { margin: 0; }
"""

# Live refresh: the job table (and the counts) are fetched again every few seconds while "live" is
# ticked, with the page's own filters; nothing else on the page changes.
JS = """
(function () {
  var box = document.getElementById("live");
  var target = document.getElementById("refreshed");
  if (!box || !target) { return; }
  var url = target.getAttribute("data-src");
  var every = Number(target.getAttribute("data-every") || "3000");
  function tick() {
    if (!box.checked) { return; }
    fetch(url, {headers: {"accept": "text/html"}}).then(function (answer) {
      if (!answer.ok) { throw new Error(String(answer.status)); }
      return answer.text();
    }).then(function (html) {
      target.innerHTML = html;
      var done = Number(target.getAttribute("data-refreshes") || "0") + 1;
      target.setAttribute("data-refreshes", String(done));
    }).catch(function () { /* the next tick tries again */ });
  }
  setInterval(tick, every);
})();
"""
