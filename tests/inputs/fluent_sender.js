// The npm fluent-logger sending events to a forward input, for tests/inputs/test_forward.py.
// Usage: node fluent_sender.js CONFIG.json, where CONFIG is
//   {"port": N, "tag": "app", "options": {...FluentSender options...}, "ca": "PEM path"?,
//    "events": [{"label": "web", "data": {...}, "time": [sec, nsec]?}, ...]}
// Every event is emitted at once; the script prints one JSON line {"ok": N, "errors": [...]}
// once every emit's callback has run (with requireAckResponse: once its ack came), or at the
// first error event (a refused handshake runs no callback), or after "timeout_ms", and exits.
'use strict';
const fs = require('fs');
const logger = require('fluent-logger');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const options = Object.assign({ host: '127.0.0.1', port: config.port }, config.options);
if (config.ca) {
  options.tlsOptions = { ca: [fs.readFileSync(config.ca)], servername: '127.0.0.1' };
}
// Quiet: the library logs its handshake steps through this.
options.internalLogger = { info() {}, error(...args) { console.error(...args); } };
// A refused connection is an error to report, not a reason to wait 10 minutes and retry.
options.enableReconnect = false;
const sender = logger.createFluentSender(config.tag, options);

const errors = [];
let ok = 0;
let left = config.events.length;
let finished = false;
const finish = () => {
  if (finished) return;
  finished = true;
  sender.end(null, null, () => {
    process.stdout.write(JSON.stringify({ ok, errors }) + '\n');
    process.exit(0);
  });
};
sender.on('error', (err) => {
  errors.push(String(err && err.message ? err.message : err));
  finish();
});
setTimeout(() => {
  errors.push('timeout: ' + left + ' events without their callback');
  finish();
}, config.timeout_ms || 30000);
for (const event of config.events) {
  const time = event.time ? new logger.EventTime(event.time[0], event.time[1]) : undefined;
  const done = (err) => {
    if (err) {
      errors.push(String(err.message || err));
    } else {
      ok += 1;
    }
    left -= 1;
    if (left === 0) finish();
  };
  if (time) {
    sender.emit(event.label, event.data, time, done);
  } else {
    sender.emit(event.label, event.data, done);
  }
}
if (left === 0) finish();
