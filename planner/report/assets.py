"""The report's style and its two small scripts, inlined so that the page fetches nothing.

ERRORS_SCRIPT runs first, in <head>: it writes every script error, failed load and console.error
into the page's `data-errors` attribute, which `experiments/check_report.py` reads back from a
headless browser. GRID_SCRIPT decodes every grid (see `planner.report.grids` for the encoding),
sizes its box, and paints it on a canvas when it scrolls near the view, so a page of thousands of
grids opens fast (all at once before printing, or with `?paint=all` after the file's URL); it records how many grids it decoded and painted in `data-grids` / `data-painted`.
"""

from planner.report.grids import RUN_LETTERS

# The usual ARC palette, colour 0..9.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
           "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")

STYLE = """
:root{--ok:#1a7f37;--bad:#c62828;--partly:#b26a00;--muted:#6b6b6b;--line:#e3e3e3}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f1f1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 24px 60px}
h2{margin:.2em 0 0;font-size:22px}
h3{margin:0 0 .4em;font-size:17px}
h4{margin:.8em 0 .3em;font-size:14px}
.sub{color:var(--muted);margin:.1em 0 1em}
.ok{color:var(--ok)}.bad{color:var(--bad)}.muted{color:var(--muted)}
.warn{background:#fff4e5;border:1px solid #f0b35b;border-radius:6px;padding:8px 12px;margin:.6em 0}
.scores{display:flex;flex-wrap:wrap;gap:12px;margin:.8em 0 .3em}
.score{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:170px;max-width:300px}
.score .big{font-size:26px;font-weight:650}.score.headline .big{font-size:34px;color:#0b4f9c}
.score .label{font-weight:600}.score .muted{font-size:12px}
table.settings{border-collapse:collapse;margin:.6em 0 1em;background:#fff;border:1px solid var(--line)}
table.settings th,table.settings td{padding:4px 12px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
table.settings th{font-weight:600;white-space:nowrap;color:#444}
nav.index{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:1em 0}
nav.index h3{display:inline;margin-right:1em}
.filter{display:none}.js .filter{display:inline}
.filter button{font:inherit;font-size:12px;border:1px solid #ccc;background:#f4f4f4;border-radius:12px;padding:1px 10px;margin:0 4px 4px 0;cursor:pointer}
.filter button.on{background:#1f1f1f;color:#fff;border-color:#1f1f1f}
.links{display:flex;flex-wrap:wrap;gap:4px 6px;margin-top:6px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.links a{text-decoration:none;padding:1px 6px;border-radius:4px;border:1px solid transparent}
a.t.solved{color:var(--ok);background:#e9f6ec}a.t.partly{color:var(--partly);background:#fff4e0}
a.t.failed{color:var(--bad);background:#fdecec}a.t.error{color:#fff;background:var(--bad)}
a.t.unscored,a.t.not-run{color:var(--muted);background:#efefef}
section.task{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:14px 0}
.badge{font-size:12px;font-weight:600;border-radius:10px;padding:1px 8px;vertical-align:2px;margin-left:4px}
.badge.solved{background:#e9f6ec;color:var(--ok)}.badge.partly{background:#fff4e0;color:var(--partly)}
.badge.failed{background:#fdecec;color:var(--bad)}.badge.error{background:var(--bad);color:#fff}
.badge.unscored,.badge.not-run{background:#efefef;color:var(--muted)}
.row{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:flex-start}
.pair{display:flex;align-items:center;gap:6px;padding:4px 6px;background:#f6f6f6;border-radius:6px}
.arrow{color:#999;font-size:18px}
figure.fig{margin:0;font-size:12px;max-width:240px}
figure.fig figcaption{margin-top:3px;line-height:1.3}
.g{display:inline-block;min-width:24px;min-height:24px;color:var(--muted);font-size:11px;line-height:1}
.g canvas{display:block}
.nogrid{display:flex;align-items:center;justify-content:center;width:70px;height:50px;border:1px dashed #bbb;color:var(--muted)}
.test{border-top:1px solid var(--line);margin-top:10px}
.answers figure.fig{background:#f6f6f6;border-radius:6px;padding:6px}
.note{background:#fff8e1;border-radius:6px;padding:4px 10px;display:inline-block}
details.attempts>summary{cursor:pointer;color:#444;margin:.6em 0 .2em;font-weight:600}
.attempt{border:1px solid var(--line);border-radius:6px;margin:6px 0;background:#fcfcfc}
.attempt.picked{border-color:#9cc3ef}
.ahead{padding:4px 10px;background:#f3f3f3;border-bottom:1px solid var(--line);border-radius:6px 6px 0 0}
.attempt.picked .ahead{background:#eaf2fd}
.chosen{color:#0b4f9c}
.abody{display:flex;flex-wrap:wrap;gap:8px 18px;padding:6px 10px}
.abody>p{margin:.2em 0;flex-basis:100%}
.explain{flex:1;min-width:300px}.explain p{margin:.2em 0}
.label{font-size:12px;font-weight:600;color:#555;margin-top:4px}
pre{white-space:pre-wrap;font-size:12px;margin:2px 0;padding:6px 8px;background:#f4f4f4;border-radius:4px;max-height:16em;overflow:auto}
ul.checks{margin:2px 0;padding-left:1.3em;font-size:13px}
.steps{display:flex;gap:4px;margin:2px 0 6px}
.step{display:flex;flex-direction:column;align-items:center;width:30px}
.step .bar{width:22px;height:30px;background:#e8e8e8;border-radius:3px;display:flex;align-items:flex-end;overflow:hidden}
.step i{display:block;width:100%;background:#4a90d9}
.step b{font-size:10px;font-weight:400;color:#555}
p.top{text-align:right;margin:.4em 0 0;font-size:12px}
body[data-show=solved] section.task:not(.solved),body[data-show=partly] section.task:not(.partly),
body[data-show=failed] section.task:not(.failed),body[data-show=error] section.task:not(.error),
body[data-show=unscored] section.task:not(.unscored),body[data-show=not-run] section.task:not(.not-run){display:none}
"""

ERRORS_SCRIPT = """
(function(){var root=document.documentElement,seen=[];root.className="js";
function note(m){seen.push(String(m));root.setAttribute("data-errors",seen.join(" | "));}
window.addEventListener("error",function(e){note(e.message||("could not load "+((e.target&&(e.target.src||e.target.href))||"a resource")));},true);
window.addEventListener("unhandledrejection",function(e){note("unhandled rejection: "+e.reason);});
var original=console.error;console.error=function(){note(Array.prototype.join.call(arguments," "));return original.apply(console,arguments);};})();
"""

GRID_SCRIPT = """
(function(){
var PALETTE=%(palette)s,RUN="%(runs)s",root=document.documentElement;
function rows(code){var out=code.split("/").map(function(row){return row.replace(/([0-9])([a-zA-Z])/g,function(m,d,k){return d.repeat(RUN.indexOf(k));});});
  var w=out[0].length;out.forEach(function(r){if(r.length!==w||!/^[0-9]+$/.test(r))throw new Error("bad grid code: "+code);});return out;}
function cellSize(h,w){return Math.max(4,Math.min(18,Math.floor(150/Math.max(h,w))));}
function paint(el){var g=el._rows,h=g.length,w=g[0].length,c=cellSize(h,w),gap=c>=8?1:0,ratio=window.devicePixelRatio||1;
  var W=w*c+gap,H=h*c+gap,cv=document.createElement("canvas"),ctx=cv.getContext("2d");
  cv.width=Math.round(W*ratio);cv.height=Math.round(H*ratio);cv.style.width=W+"px";cv.style.height=H+"px";ctx.scale(ratio,ratio);
  ctx.fillStyle="#444";ctx.fillRect(0,0,W,H);
  for(var r=0;r<h;r++)for(var k=0;k<w;k++){ctx.fillStyle=PALETTE[g[r].charCodeAt(k)-48];ctx.fillRect(k*c+gap,r*c+gap,c-gap,c-gap);}
  var x=el._marks;if(x){for(r=0;r<h;r++)for(k=0;k<w;k++){if(x[r][k]!=="1")continue;
    var x0=k*c+gap,y0=r*c+gap,s=c-gap,m=Math.max(1,s*0.18);
    [["rgba(0,0,0,.75)",Math.max(2.5,c/3.5)],["#fff",Math.max(1.2,c/7)]].forEach(function(p){ctx.strokeStyle=p[0];ctx.lineWidth=p[1];
      ctx.beginPath();ctx.moveTo(x0+m,y0+m);ctx.lineTo(x0+s-m,y0+s-m);ctx.moveTo(x0+s-m,y0+m);ctx.lineTo(x0+m,y0+s-m);ctx.stroke();});}}
  cv.setAttribute("role","img");cv.setAttribute("aria-label",h+"x"+w+" grid"+(x?", differing cells crossed":""));
  el.textContent="";el.appendChild(cv);el._painted=true;painted++;root.setAttribute("data-painted",painted);}
var grids=[],painted=0;
document.querySelectorAll(".g[data-g]").forEach(function(el){try{el._rows=rows(el.getAttribute("data-g"));
  if(el.hasAttribute("data-x")){el._marks=rows(el.getAttribute("data-x"));
    if(el._marks.length!==el._rows.length||el._marks[0].length!==el._rows[0].length)throw new Error("diff mask does not fit its grid");}
  }catch(e){console.error(e.message);return;}  /* one bad grid must not blank the others */
  var h=el._rows.length,w=el._rows[0].length,c=cellSize(h,w),gap=c>=8?1:0;
  el.style.width=(w*c+gap)+"px";el.style.height=(h*c+gap)+"px";grids.push(el);});
root.setAttribute("data-grids",grids.length);root.setAttribute("data-painted",0);
function paintAll(){grids.forEach(function(el){if(!el._painted)paint(el);});}
if("IntersectionObserver" in window&&!/[?&]paint=all/.test(location.search)){
  var seen=new IntersectionObserver(function(entries){entries.forEach(function(e){
    if(e.isIntersecting&&!e.target._painted){paint(e.target);seen.unobserve(e.target);}});},{rootMargin:"800px 0px"});
  grids.forEach(function(el){seen.observe(el);});}else{paintAll();}
window.addEventListener("beforeprint",paintAll);
document.querySelectorAll(".filter button").forEach(function(b){b.addEventListener("click",function(){
  document.body.setAttribute("data-show",b.getAttribute("data-show"));
  document.querySelectorAll(".filter button").forEach(function(o){o.classList.toggle("on",o===b);});});});
})();
""" % {"palette": "[" + ",".join(f'"{c}"' for c in PALETTE) + "]", "runs": RUN_LETTERS}
