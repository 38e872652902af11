// minirnn serve: the page.  Vanilla JavaScript, no network but this server (docs/serve.md).
(function () {
  'use strict';
  var P = window.minirnnPage;   // the pages' shared helpers (minirnn/study/page.js)
  var $ = P.$, el = P.el, clear = P.clear, api = P.api, showError = P.showError, hideError = P.hideError;
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  var PUBLISHED = {  // docs/study.md: published top-1 accuracy given k letters seen (k = 0..7)
    gru: [0.165, 0.383, 0.556, 0.658, 0.678, 0.673, 0.660, 0.665],
    lstm: [0.167, 0.376, 0.539, 0.641, 0.670, 0.670, 0.659, 0.669],
    nlstm: [0.137, 0.326, 0.492, 0.591, 0.622, 0.626, 0.619, 0.635]
  };
  var SVGNS = 'http://www.w3.org/2000/svg';
  var S = { meta: null, data: null, sel: null, seq: 0, connWanted: null, connRun: null, pending: Promise.resolve(), accuracy: {} };
  var input = $('input'), textEl = $('text'), scaleEl = $('scale');

  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function color(i) { return COLORS[i % COLORS.length]; }
  function label(i) { return S.meta.models[i].label; }
  function pct(p) { return (100 * p).toFixed(1) + '%'; }
  function ramp(l) {  // white -> yellow -> red, as minirnn/study/connectivity.py
    var a, b, f;
    if (l <= 0.5) { a = [255, 255, 255]; b = [255, 230, 80]; f = l / 0.5; } else { a = [255, 230, 80]; b = [230, 40, 30]; f = (l - 0.5) / 0.5; }
    return 'rgb(' + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * f); }).join(',') + ')';
  }
  function rel(v, vmax) {
    if (!(vmax > 0)) return 0;
    var r = Math.min(Math.max(v / vmax, 0), 1);
    if (scaleEl.value === 'log') r = r > 0 ? Math.min(Math.max(1 + Math.log10(r) / S.meta.log_decades, 0), 1) : 0;
    return r;
  }
  function charLabel(c) { return c === ' ' ? '\u00a0' : c; }

  // ------------------------------------------------------------------ typing
  function hasLetters(t) { return /[A-Za-z0-9\u00c0-\u024f]/.test(t); }
  function onInput() {
    var text = input.value, my = ++S.seq;
    $('counter').textContent = text.length + ' / ' + S.meta.max_chars + ' characters';
    if (!hasLetters(text)) {
      S.data = null; S.sel = null; hideError(); renderText(); renderPosition(); renderMaps(null);
      S.pending = Promise.resolve();
      return S.pending;
    }
    document.body.setAttribute('data-state', 'busy');
    // typing: a trailing space starts the next word, and the last word has no correct word until it ends
    S.pending = api('POST', '/api/complete', { text: text, k: 3, typing: true }).then(function (d) {
      if (my !== S.seq) return;           // a later keystroke already answered
      hideError();
      S.data = d;
      S.raw = text;
      renderText();
      return select(d.text.length - 1);
    }).catch(function (e) {
      if (my !== S.seq) return;
      showError(e.message);
      document.body.setAttribute('data-state', 'error');
    });
    return S.pending;
  }

  function renderText() {
    clear(textEl);
    if (!S.data) return;
    for (var t = 0; t < S.data.text.length; t++) {
      var s = el('span', { cls: 'c', id: 'c' + t, text: charLabel(S.data.text[t]) });
      s.addEventListener('click', (function (t) { return function () { select(t); }; })(t));
      textEl.appendChild(s);
    }
  }

  function select(n) {
    if (!S.data) return Promise.resolve();
    n = Math.max(0, Math.min(n, S.data.text.length - 1));
    S.sel = n;
    document.body.setAttribute('data-selected', String(n));
    var spans = textEl.children;
    for (var t = 0; t < spans.length; t++) spans[t].classList.toggle('sel', t === n);
    renderPosition();
    return loadConnectivity(n);
  }

  function renderPosition() {
    var box = $('suggestions'), pos = $('position');
    clear(box); clear(pos);
    if (!S.data || S.sel === null) return;
    var d = S.data, n = S.sel, word = d.words[n], seen = d.letters_seen[n], typing = d.typing[n];
    var ch = d.text[n] === ' ' ? 'a space' : "'" + d.text[n] + "'";
    var of = !typing ? [el('b', { text: word })] : word ? ['the word being typed (', el('b', { text: word + '\u2026' }), ')']
      : ['the next word, not typed yet'];
    pos.appendChild(el('div', { id: 'selected-info', 'data-position': String(n), 'data-typing': String(typing) },
      [el('b', { text: 'position ' + n }), ' (' + ch + ', ' + seen + ' letter' + (seen === 1 ? '' : 's') + ' of ']
        .concat(of, [' seen)'])));
    d.models.forEach(function (m) {
      var table = el('table', { cls: 'sugg' });
      m.predictions[n].forEach(function (wp, r) {
        var ok = !typing && wp[0] === word;
        var bar = el('span', { cls: 'pbar' });
        bar.style.width = Math.max(1, Math.round(80 * wp[1])) + 'px';
        table.appendChild(el('tr', { cls: ok ? 'correct' : '', 'data-word': wp[0], 'data-probability': String(wp[1]) }, [
          el('td', { text: String(r + 1) }), el('td', { cls: 'w', text: wp[0] + (ok ? ' \u2713' : '') }),
          el('td', {}, [bar]), el('td', { text: pct(wp[1]) })]));
      });
      var note = typing ? (word ? 'typing \u201c' + word + '\u201d\u2026: what the model expects it to become'
                                : 'after a space: the next word the model expects')
        : m.in_vocabulary[n] ? 'correct word: ' + word + ', ' + pct(m.target_probability[n])
        : word + ' is not in the vocabulary';
      box.appendChild(el('div', { cls: 'card suggestion', 'data-model': String(m.id) }, [
        el('h3', {}, [swatch(m.id), label(m.id)]), table, el('div', { cls: 'muted note', text: note })]));
    });
  }

  function swatch(i) { var s = el('span', { cls: 'swatch' }); s.style.background = color(i); return s; }

  // ------------------------------------------------------------ connectivity
  // One connectivity request in flight at a time: while it runs, only the latest selection is remembered
  // and asked next, so fast typing never queues work on the server.
  function loadConnectivity(n) {
    S.connWanted = { text: S.raw, at: n, typing: true };
    document.body.setAttribute('data-state', 'busy');
    if (!S.connRun) S.connRun = runConnectivity().then(function () { S.connRun = null; });
    return S.connRun;
  }

  function runConnectivity() {
    var want = S.connWanted;
    S.connWanted = null;
    return api('POST', '/api/connectivity', want).then(function (c) {
      if (S.connWanted || !S.data) return;   // the selection moved on, or the text was cleared, meanwhile
      S.conn = c;
      renderMaps(c);
      document.body.setAttribute('data-state', 'ready');
    }, function (e) {
      if (S.connWanted) return;
      showError(e.message);
      document.body.setAttribute('data-state', 'error');
    }).then(function () { if (S.connWanted) return runConnectivity(); });
  }

  function renderMaps(c) {
    var box = $('maps');
    clear(box);
    if (!c) { S.conn = null; return; }
    box.setAttribute('data-at', String(c.at));
    c.models.forEach(function (m) {
      var map = el('div', { cls: 'map' });
      for (var t = 0; t < c.text.length; t++) {
        var s = el('span', { text: charLabel(c.text[t]) });
        if (t <= c.at) {
          s.style.background = ramp(rel(m.values[t], m.max));
          s.setAttribute('data-value', String(m.values[t]));
          s.title = 'position ' + t + ': connectivity ' + m.values[t].toExponential(3);
        }
        if (t === c.at) s.className = 'at';
        map.appendChild(s);
      }
      var why = m.class_source === 'target' ? 'the correct word'
        : m.class_source === 'typing' ? 'the top prediction while the word is being typed'
        : 'the prediction; the correct word is not in the vocabulary';
      box.appendChild(el('div', { cls: 'card conn', 'data-model': String(m.id), 'data-class': m['class'] }, [
        el('h3', {}, [swatch(m.id), label(m.id) + ' ', el('span', { cls: 'muted', text: 'logit of \u201c' + m['class'] + '\u201d (' + why + '), max ' + m.max.toExponential(2) })]),
        map]));
    });
  }

  // ----------------------------------------------------------------- charts
  function lineChart(opts) {  // {width, height, xmax, ymax, ymin, series: [{points, color, dash, dots}], xlabel, ylabel}
    var W = opts.width, H = opts.height, L = 44, R = 10, T = 10, B = 32;
    var ymin = opts.ymin || 0, ymax = opts.ymax > ymin ? opts.ymax : ymin + 1, xmin = opts.xmin || 0;
    var xmax = opts.xmax > xmin ? opts.xmax : xmin + 1;
    function X(x) { return L + (W - L - R) * (x - xmin) / (xmax - xmin); }
    function Y(y) { return H - B - (H - T - B) * (y - ymin) / (ymax - ymin); }
    var g = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    g.appendChild(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: '#fff', stroke: '#bbb' }));
    for (var i = 0; i <= 4; i++) {
      var yv = ymin + (ymax - ymin) * i / 4, t = svg('text', { x: L - 4, y: Y(yv) + 4, 'text-anchor': 'end' });
      t.textContent = opts.yfmt ? opts.yfmt(yv) : yv.toFixed(2);
      g.appendChild(t);
      g.appendChild(svg('line', { x1: L, x2: W - R, y1: Y(yv), y2: Y(yv), stroke: '#eee' }));
    }
    var xticks = opts.xticks || [0, 1, 2, 3, 4].map(function (i) { return xmin + (xmax - xmin) * i / 4; });
    xticks.forEach(function (xv) {
      var u = svg('text', { x: X(xv), y: H - B + 14, 'text-anchor': 'middle' });
      u.textContent = opts.xfmt ? opts.xfmt(xv) : String(Math.round(xv));
      g.appendChild(u);
    });
    var xl = svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle' }); xl.textContent = opts.xlabel; g.appendChild(xl);
    opts.series.forEach(function (s) {
      var pts = s.points.filter(function (p) { return p[1] !== null && isFinite(p[1]); });
      if (s.dots) {
        pts.forEach(function (p) { g.appendChild(svg('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: s.color })); });
      } else if (pts.length) {
        var line = svg('polyline', { fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.6,
          points: pts.map(function (p) { return X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1); }).join(' ') });
        if (s.dash) line.setAttribute('stroke-dasharray', s.dash);
        g.appendChild(line);
      }
    });
    return g;
  }

  function renderAccuracy() {
    var box = $('accuracy');
    clear(box);
    var series = [], notes = [], xmax = 1, done = 0;
    S.meta.models.forEach(function (m, i) {
      var a = S.accuracy[i];
      var row = el('div', { cls: 'accuracy-model', 'data-model': String(i), 'data-state': a ? a.state : 'computing' }, [swatch(i), label(i) + ': ']);
      if (!a || a.state === 'computing') row.appendChild(document.createTextNode('computing\u2026'));
      else if (a.state === 'error') row.appendChild(el('span', { cls: 'err', text: a.error }));
      else {
        done++;
        var ev = a.evaluation, bl = ev.by_letters, pts = [];
        for (var k = 0; k < bl.letters.length; k++) if (bl.positions[k] > 0) pts.push([bl.letters[k], bl.top1[k]]);
        xmax = Math.max(xmax, bl.letters[bl.letters.length - 1]);
        series.push({ points: pts, color: color(i) });
        var pub = PUBLISHED[m.unit];
        if (pub) series.push({ points: pub.map(function (v, k) { return [k, v]; }), color: color(i), dash: '2,3', width: 1 });
        row.appendChild(document.createTextNode('top-1 accuracy ' + pct(ev.accuracy) + ' over ' + ev.positions +
          ' characters of ' + ev.observations + ' test observations (' + a.source + ')'));
        row.setAttribute('data-accuracy', String(ev.accuracy));
      }
      notes.push(row);
    });
    if (done) box.appendChild(lineChart({ width: 520, height: 260, xmax: xmax, ymax: 1, series: series, xlabel: 'letters of the word seen',
      xticks: Array.from({ length: xmax + 1 }, function (_, k) { return k; }),
      xfmt: function (x) { return x === xmax ? x + '+' : String(x); } }));
    notes.forEach(function (n) { box.appendChild(n); });
  }

  function pollAccuracy(i) {
    fetch('/api/accuracy?model=' + i).then(function (r) { return r.json(); }).then(function (a) {
      if (a.error && !a.state) a = { state: 'error', error: a.error };
      S.accuracy[i] = a;
      renderAccuracy();
      if (a.state === 'computing') setTimeout(function () { pollAccuracy(i); }, 1000);
    }).catch(function (e) { S.accuracy[i] = { state: 'error', error: String(e.message || e) }; renderAccuracy(); });
  }

  function renderCheckpoints() {
    var box = $('checkpoints');
    clear(box);
    var wrap = el('div', { cls: 'charts' });
    S.meta.models.forEach(function (m, i) {
      var c = m.curves, series = [], ys = [], xs = [];
      c.train_loss.forEach(function (y) { ys.push(y); }); c.val_loss.forEach(function (y) { ys.push(y); });
      c.train_step.forEach(function (x) { xs.push(x); }); c.val_step.forEach(function (x) { xs.push(x); });
      series.push({ points: c.train_step.map(function (x, k) { return [x, c.train_loss[k]]; }), color: color(i), width: 1 });
      series.push({ points: c.val_step.map(function (x, k) { return [x, c.val_loss[k]]; }), color: '#000', dots: true });
      var chart = ys.length ? lineChart({ width: 300, height: 190, xmax: Math.max.apply(null, xs), ymin: Math.min.apply(null, ys) * 0.95,
        ymax: Math.max.apply(null, ys) * 1.02, series: series, xlabel: 'step (line: training loss, dots: validation)' })
        : el('p', { cls: 'muted', text: 'no training history stored' });
      var rows = [['file', m.file], ['unit', m.unit], ['step', m.step], ['hidden', m.model.hidden], ['layers', m.model.layers],
        ['depth', m.model.depth], ['parameters', m.parameters.total.toLocaleString('en')], ['output words', m.output_words],
        ['dtype', m.dtype]];
      Object.keys(m.settings).forEach(function (k) {
        if (['unit', 'hidden', 'layers', 'depth', 'out', 'dtype'].indexOf(k) < 0) {
          rows.push([k === 'device' ? 'trained on' : k, String(m.settings[k])]);
        }
      });
      var table = el('table', { cls: 'settings' });
      rows.forEach(function (r) { table.appendChild(el('tr', {}, [el('td', { cls: 'muted', text: r[0] }), el('td', { text: String(r[1]) })])); });
      wrap.appendChild(el('div', { cls: 'card checkpoint', 'data-model': String(i) }, [el('h3', {}, [swatch(i), m.label]), chart, table]));
    });
    box.appendChild(wrap);
  }

  // ------------------------------------------------------------------- input
  input.addEventListener('input', onInput);
  scaleEl.addEventListener('change', function () { renderMaps(S.conn); });
  textEl.addEventListener('keydown', function (e) {
    if (!S.data || S.sel === null) return;
    var n = S.sel, last = S.data.text.length - 1;
    if (e.key === 'ArrowLeft') n -= 1; else if (e.key === 'ArrowRight') n += 1;
    else if (e.key === 'Home') n = 0; else if (e.key === 'End') n = last; else return;
    e.preventDefault();
    if (n >= 0 && n <= last && n !== S.sel) select(n);
  });

  // A screenshot hook: #type=TEXT&select=N&scale=log types TEXT one character at a time through the
  // same input handler as the keyboard, then clicks character N (negative: from the end).
  function fromHash() {
    var h = new URLSearchParams((window.location.hash || '').replace(/^#/, ''));
    if (!h.has('type')) return;
    var text = h.get('type'), sel = h.get('select'), chain = Promise.resolve();
    if (h.get('scale') === 'log' || h.get('scale') === 'linear') scaleEl.value = h.get('scale');
    input.value = '';
    text.split('').forEach(function (ch) {
      chain = chain.then(function () { input.value += ch; input.dispatchEvent(new Event('input')); return S.pending; });
    });
    chain.then(function () {
      if (sel === null || !S.data) return;
      var n = parseInt(sel, 10);
      if (n < 0) n += S.data.text.length;
      var span = $('c' + n);
      if (span) { span.click(); }
    });
  }

  api('GET', '/api/models').then(function (meta) {
    S.meta = meta;
    $('models-line').textContent = meta.models.map(function (m) { return m.label + ' (' + m.file + ', step ' + m.step + ')'; }).join(' \u00b7 ') +
      ' \u00b7 on the ' + meta.device.toUpperCase();
    $('counter').textContent = '0 / ' + meta.max_chars + ' characters';
    renderCheckpoints();
    renderAccuracy();
    meta.models.forEach(function (m, i) { pollAccuracy(i); });
    document.body.setAttribute('data-state', 'ready');
    window.addEventListener('hashchange', fromHash);
    fromHash();
  }).catch(function (e) { showError('cannot load the models: ' + e.message); });
})();
