// The analytics tracker: see the README's "The tracker". At most 1.5 KB gzipped.
(() => {
  const w = window, d = document, l = location, n = navigator, script = d.currentScript;
  const attr = (name) => script.getAttribute('data-' + name);
  const has = (name) => script.hasAttribute('data-' + name);
  const api = attr('api') || new URL(script.src).origin + '/event';
  const keep = (attr('query') || '').split(',').filter(Boolean);
  let last;

  const ignored = () => {
    try {
      if (localStorage.analytics_ignore == 'true') return true;
    } catch (e) {}
    return n.webdriver || l.protocol == 'file:' ||
      /^(localhost|127(\.\d+){3}|\[::1\])$/.test(l.hostname) ||
      (has('respect-dnt') && (n.doNotTrack == '1' || n.globalPrivacyControl));
  };

  const path = () => {
    const query = new URLSearchParams(l.search), kept = new URLSearchParams();
    keep.forEach((key) => query.has(key) && kept.set(key, query.get(key)));
    const search = '' + kept;
    return l.pathname + (search ? '?' + search : '') + (has('hash') ? l.hash : '');
  };

  const send = (type, given) => {
    if (ignored()) return;
    const props = {}, width = screen.width;
    new URLSearchParams(l.search).forEach((v, k) => k.startsWith('utm_') && (props[k] = v));
    Object.assign(props, given);
    props.screen = width < 576 ? 'mobile' : width < 992 ? 'tablet' : width < 1440 ? 'laptop' : 'desktop';
    for (const k in props) props[k] = String(props[k]).slice(0, 1024);
    const body = JSON.stringify({
      site_id: attr('site'), event_type: type, path: path().slice(0, 2048),
      referrer: d.referrer.slice(0, 2048) || undefined, properties: props,
    });
    // A string goes as text/plain: no CORS preflight.
    if (w.fetch) fetch(api, {method: 'POST', body, keepalive: true}).catch(() => {});
    else n.sendBeacon(api, body);
  };

  const pageview = () => {
    const now = path();
    if (now != last) {
      last = now;
      send('page_view');
    }
  };

  // A prerendered or hidden page is counted once shown.
  const whenShown = () => {
    if (d.prerendering) d.addEventListener('prerenderingchange', whenShown, {once: true});
    else if (d.visibilityState == 'hidden') d.addEventListener('visibilitychange', whenShown, {once: true});
    else pageview();
  };

  for (const method of ['pushState', 'replaceState']) {
    const original = history[method];
    history[method] = function () {
      original.apply(this, arguments);
      whenShown();
    };
  }
  w.addEventListener('popstate', whenShown);
  if (has('hash')) w.addEventListener('hashchange', whenShown);
  // Back from the back/forward cache.
  w.addEventListener('pageshow', (e) => e.persisted && (last = null, whenShown()));

  const click = (e) => {
    if (e.button > 1) return;
    const tagged = e.target.closest('[data-analytics-event]');
    if (tagged) {
      const props = {};
      for (const a of tagged.attributes) {
        if (a.name.startsWith('data-analytics-prop-')) props[a.name.slice(20)] = a.value;
      }
      send(tagged.getAttribute('data-analytics-event'), props);
    }
    const link = has('outbound-links') && e.target.closest('a[href]');
    if (link && /^https?:$/.test(link.protocol) && link.host != l.host) {
      send('outbound_link', {url: link.href});
    }
  };
  d.addEventListener('click', click);
  d.addEventListener('auxclick', click);

  w.analytics = {track: send};
  whenShown();
})();
