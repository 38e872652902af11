// What both minirnn pages (serve_page, read_page) need from the DOM and their server: one copy,
// loaded before each page's own script.  Vanilla JavaScript, no network but the page's server.
window.minirnnPage = (function () {
  'use strict';
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) {
      if (k === 'text') e.textContent = attrs[k]; else if (k === 'cls') e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function api(method, path, body) {  // JSON in and out; a JSON error (or none at all) becomes a rejected Error
    var opts = { method: method, headers: {} };
    if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return { error: 'the server answered ' + r.status + ' without JSON' }; })
        .then(function (j) { if (!r.ok || j.error) throw new Error(j.error || ('HTTP ' + r.status)); return j; });
    });
  }
  function showError(msg) { var e = $('error'); e.textContent = msg; e.hidden = false; document.body.setAttribute('data-error', msg); }
  function hideError() { var e = $('error'); e.hidden = true; e.textContent = ''; document.body.removeAttribute('data-error'); }
  return { $: $, el: el, clear: clear, api: api, showError: showError, hideError: hideError };
})();
