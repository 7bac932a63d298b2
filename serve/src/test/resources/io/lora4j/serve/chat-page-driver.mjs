// Runs the chat page's own script (served at BASE + "/") in Node against a live server, with a minimal DOM:
// loads the models, picks MODEL, sets temperature 0 and MAX tokens, types MESSAGE, presses Enter, waits for the
// reply to finish, and prints what the page shows as JSON: {models, log, stats}.
// usage: node chat-page-driver.mjs BASE MODEL MAX MESSAGE
const [base, model, max, message] = process.argv.slice(2);

class Element {
  constructor(tag, id) {
    this.tagName = tag; this.id = id; this.children = []; this.value = ''; this.className = '';
    this.listeners = {}; this._text = '';
  }
  get textContent() { return this._text + this.children.map(c => c.textContent).join(''); }
  set textContent(t) { this._text = String(t); this.children = []; }
  set innerHTML(h) { if (h !== '') throw new Error('the driver only clears innerHTML'); this._text = ''; this.children = []; }
  get innerHTML() { return this.textContent; }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(type, f) { (this.listeners[type] ||= []).push(f); }
}
const html = await (await fetch(base + '/')).text();
const ids = [...html.matchAll(/id="([^"]+)"/g)].map(m => m[1]);
const tags = Object.fromEntries([...html.matchAll(/<(\w+)[^>]*id="([^"]+)"/g)].map(m => [m[2], m[1]]));
const elements = Object.fromEntries(ids.map(id => [id, new Element(tags[id], id)]));
elements.temp.value = '0';
elements.max.value = String(max);
globalThis.document = {
  getElementById: id => elements[id] ?? (() => { throw new Error('no element #' + id); })(),
  createElement: tag => new Element(tag, null),
};
const nodeFetch = globalThis.fetch;
globalThis.fetch = (url, init) => nodeFetch(new URL(url, base), init); // the page fetches relative URLs

const script = html.match(/<script>([\s\S]*?)<\/script>/)[1];
new Function(script)();
const until = async (cond, what) => {
  for (let i = 0; i < 600; i++) { if (cond()) return; await new Promise(r => setTimeout(r, 50)); }
  throw new Error('timed out waiting for ' + what);
};
await until(() => elements.model.children.length > 0, 'the models');
const models = elements.model.children.map(o => o.value);
elements.model.value = model;
elements.input.value = message;
for (const f of elements.input.listeners.keydown) f({key: 'Enter', shiftKey: false, preventDefault() {}});
await until(() => elements.stats.textContent !== '', 'the reply');
console.log(JSON.stringify({models, log: elements.log.children.map(d => ({role: d.className, text: d.textContent})),
  stats: elements.stats.textContent}));
