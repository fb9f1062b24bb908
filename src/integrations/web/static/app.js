// Signoff web app: progressive enhancement only. Every page works without this file.
(() => {
  var main = document.getElementById('main');
  var live = document.getElementById('live');

  // after a refused form, take keyboard and screen-reader users to what went wrong
  var problems = document.getElementById('problems');
  if (problems) problems.focus();

  var watch = (document.body.getAttribute('data-watch') || '').split(' ').filter(Boolean);
  if (!watch.length || !window.EventSource || !main) return;

  var typing = () => {
    var el = document.activeElement;
    if (el && main.contains(el) && (el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' && el.type === 'text'))) return true;
    var fields = main.querySelectorAll('textarea, input[type=text]');
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  };

  function offerReload() {
    if (document.getElementById('stale')) return;
    var p = document.createElement('p');
    p.id = 'stale';
    p.className = 'notice';
    p.setAttribute('role', 'status');
    p.textContent = 'Something on this page changed. ';
    var b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Show the latest';
    b.addEventListener('click', () => {
      refresh(true);
    });
    p.appendChild(b);
    main.insertBefore(p, main.firstChild.nextSibling);
  }

  function refresh(force) {
    if (!force && typing()) return offerReload();
    fetch(location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' })
      .then((r) => (r.ok ? r.text() : null))
      .then((text) => {
        if (text === null) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var next = doc.getElementById('main');
        if (!next) return;
        var focusedId = document.activeElement?.id;
        main.innerHTML = next.innerHTML;
        document.title = doc.title;
        // what the page shows may have changed (an approved request now has deliveries to follow)
        watch = (doc.body.getAttribute('data-watch') || '').split(' ').filter(Boolean);
        if (focusedId && document.getElementById(focusedId)) document.getElementById(focusedId).focus();
        if (live) live.textContent = `Page updated ${new Date().toLocaleTimeString()}`;
      })
      .catch(() => {});
  }

  var timer = null;
  var source = new EventSource('/app/events');
  source.addEventListener('change', (e) => {
    var data;
    try {
      data = JSON.parse(e.data);
    } catch (_) {
      return;
    }
    var listed = watch.indexOf('*') >= 0 && data.subjectType !== 'delivery';
    if (!listed && watch.indexOf(data.subjectId) < 0) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      refresh(false);
    }, 250);
  });
  window.addEventListener('pagehide', () => {
    source.close();
  });
})();
