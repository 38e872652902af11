// minirnn read: a derivation beside the code that computes it.  Vanilla JavaScript; data from this
// server's /api (or, in a folder written by --out, from data.js), nothing from the network (docs/read.md).
(function () {
  'use strict';
  var P = window.minirnnPage;   // the pages' shared helpers (minirnn/study/page.js)
  var $ = P.$, el = P.el, clear = P.clear, api = P.api, showError = P.showError, hideError = P.hideError;
  var STATIC = window.MINIRNN_READ || null;
  var S = { view: null, tag: null };
  var docEl = $('doc'), unitEl = $('unit');

  function units() { return STATIC ? Promise.resolve({ units: STATIC.units }) : api('GET', '/api/units'); }
  function unitView(name) {
    if (!STATIC) return api('GET', '/api/unit?name=' + encodeURIComponent(name));
    var v = STATIC.views[name];
    return v ? Promise.resolve(v) : Promise.reject(new Error('this folder holds no page for ' + name));
  }

  // ---------------------------------------------------------------- a unit
  function load(name, tag) {
    document.body.setAttribute('data-state', 'loading');
    return unitView(name).then(function (v) {
      hideError();
      S.view = v;
      unitEl.value = v.name;
      docEl.innerHTML = v.html;            // rendered and escaped by minirnn/study/markdown.py
      document.body.setAttribute('data-unit', v.name);
      select(v.tags.indexOf(tag) >= 0 ? tag : v.tags[0]);
      document.body.setAttribute('data-state', 'ready');
    }).catch(function (e) { showError(e.message); document.body.setAttribute('data-state', 'error'); });
  }

  // ------------------------------------------------------------ selection
  function select(tag) {
    var v = S.view;
    if (!v || v.tags.indexOf(tag) < 0) return;
    S.tag = tag;
    document.body.setAttribute('data-tag', tag);
    history.replaceState(null, '', '#' + v.name + '/' + tag);
    $('current').textContent = tag + ' (' + (v.tags.indexOf(tag) + 1) + ' of ' + v.tags.length + ')';
    Array.prototype.forEach.call(document.querySelectorAll('.tag, .eq'), function (e) {
      var on = e.getAttribute('data-tag') === tag || (e.getAttribute('data-tags') || '').split(' ').indexOf(tag) >= 0;
      e.classList.toggle('sel', on);
    });
    var shown = docEl.querySelector('.eq.sel') || docEl.querySelector('.tag.sel');
    if (shown) shown.scrollIntoView({ block: 'center' });
    renderCode(tag);
  }
  function step(by) {
    var tags = S.view ? S.view.tags : [];
    var i = tags.indexOf(S.tag) + by;
    if (i >= 0 && i < tags.length) select(tags[i]);
  }

  // Tags of the unit inside a line of code become clickable, the rest stays text.
  function codeLine(text, prefix) {
    var span = el('span'), re = /\[([A-Z]{2,6}-[FB]\d{1,2}[a-z]?)\]/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m[1].split('-')[0] !== prefix) continue;
      span.appendChild(document.createTextNode(text.slice(last, m.index)));
      span.appendChild(el('span', { cls: 'tag' + (m[1] === S.tag ? ' sel' : ''), 'data-tag': m[1], text: m[0] }));
      last = m.index + m[0].length;
    }
    span.appendChild(document.createTextNode(text.slice(last)));
    return span;
  }

  function renderCode(tag) {
    var v = S.view, sites = v.sites[tag] || {}, box = $('sites');
    $('code-title').textContent = tag;
    clear(box);
    v.paths.forEach(function (p) {
      var list = sites[p.name] || [];
      var sec = el('section', { cls: 'path', 'data-path': p.name, 'data-count': String(list.length) },
                   [el('h3', { text: p.label + ' (' + p.roots.join(', ') + ')' })]);
      if (!list.length) sec.appendChild(el('p', { cls: 'muted', text: 'no line on this path cites ' + tag + '.' }));
      list.forEach(function (s) {
        var pre = el('pre');
        s.context.forEach(function (c) {
          var line = el('span', { cls: s.lines.indexOf(c[0]) >= 0 ? 'hit' : '' }, [el('span', { cls: 'ln', text: String(c[0]) }), codeLine(c[1], v.prefix)]);
          pre.appendChild(line);
          pre.appendChild(document.createTextNode('\n'));
        });
        var at = s.file + ':' + s.lines[0] + (s.lines.length > 1 ? '\u2013' + s.lines[s.lines.length - 1] : '');
        sec.appendChild(el('div', { cls: 'site', 'data-file': s.file, 'data-lines': s.lines.join(' ') },
                           [el('div', { cls: 'where', text: at + '  ' + s.functions.join(', ') }), pre]));
      });
      box.appendChild(sec);
    });
    renderCheck(tag);
  }

  // ------------------------------------------------------------------ check
  function renderCheck(tag) {
    var box = $('check'), plan = S.view.checks[tag];
    clear(box);
    box.removeAttribute('data-state');
    if (!plan) { box.appendChild(el('p', { cls: 'muted', text: 'A forward equation: nothing to check numerically.' })); return; }
    var button = el('button', { id: 'check-button', type: 'button', text: 'check ' + tag });
    box.appendChild(button);
    box.appendChild(el('p', { id: 'check-plan', cls: 'muted', text: plan.note.charAt(0).toUpperCase() + plan.note.slice(1) + '.' }));
    if (STATIC) {
      button.disabled = true;
      box.appendChild(el('p', { cls: 'muted', text: 'The check needs the live server: run  minirnn read ' + S.view.name }));
      return;
    }
    box.appendChild(el('div', { id: 'check-result' }));
    button.addEventListener('click', function () { runCheck(tag); });
  }
  function runCheck(tag) {
    var box = $('check'), out = $('check-result');
    clear(out);
    out.appendChild(el('p', { cls: 'muted', text: 'checking\u2026 (the first check compiles the CPU kernels: seconds)' }));
    box.setAttribute('data-state', 'running');
    $('check-button').disabled = true;
    api('POST', '/api/check', { tag: tag }).then(function (r) {
      if (S.tag !== tag) return;
      clear(out);
      var rows = r.tensors.map(function (t) {
        return el('tr', { 'data-path': t.path, 'data-tensor': t.name, 'data-error': String(t.error) }, [
          el('td', { text: t.path }), el('td', { text: t.name }), el('td', { text: t.shape.join('x') || 'scalar' }), el('td', { text: String(t.checked) }),
          el('td', { text: t.max_abs_grad.toExponential(3) }), el('td', { text: t.error.toExponential(2) }),
          el('td', { cls: t.passed ? 'ok' : 'fail', text: t.passed ? 'ok' : 'FAIL' })]);
      });
      var head = el('tr', {}, ['path', 'tensor', 'shape', 'checked', 'max|grad|', 'rel. error', ''].map(function (h) { return el('th', { text: h }); }));
      out.appendChild(el('table', { id: 'check-table' }, [head].concat(rows)));
      out.appendChild(el('p', { id: 'check-summary', cls: r.passed ? 'ok' : 'fail',
        text: (r.passed ? 'passed: ' : 'FAILED: ') + 'worst relative error ' + r.worst.toExponential(2) +
              (r.passed ? ' \u2264 ' : ' > ') + 'tolerance ' + r.tolerance.toExponential(0) + ' (entries below ' + r.floor.toExponential(0) +
              '\u00b7max(1, |L|) compared absolutely)' }));
      out.appendChild(el('p', { cls: 'muted', text: r.setup }));
      box.setAttribute('data-worst', String(r.worst));
      box.setAttribute('data-state', r.passed ? 'passed' : 'failed');
    }).catch(function (e) { clear(out); showError(e.message); box.setAttribute('data-state', 'error'); })
      .then(function () { var b = $('check-button'); if (b) b.disabled = false; });
  }

  // ----------------------------------------------------------------- events
  document.addEventListener('click', function (ev) {
    var t = ev.target.closest ? ev.target.closest('.tag') : null;
    if (!t) return;
    ev.preventDefault();
    select(t.getAttribute('data-tag'));
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.target === unitEl || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === 'ArrowRight') { ev.preventDefault(); step(1); }
    if (ev.key === 'ArrowLeft') { ev.preventDefault(); step(-1); }
  });
  $('next').addEventListener('click', function () { step(1); });
  $('prev').addEventListener('click', function () { step(-1); });
  unitEl.addEventListener('change', function () { load(unitEl.value); });

  units().then(function (d) {
    d.units.forEach(function (u) { unitEl.appendChild(el('option', { value: u.name, text: u.label })); });
    var want = decodeURIComponent(location.hash.slice(1)).split('/');
    var first = d.units.some(function (u) { return u.name === want[0]; }) ? want[0] : d.units[0].name;
    return load(first, want[1]);
  }).catch(function (e) { showError(e.message); document.body.setAttribute('data-state', 'error'); });
}());
