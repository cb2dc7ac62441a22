// bench/ws_reference.mjs: the reference server of make bench, on Node's ws (npm, bench/package.json).
// It speaks bench/rooms.lua's protocol exactly, so the rooms, idle-room and accept scenarios run
// unchanged against both servers and bench/run prints confab/ws ratios:
//   {"type":"hello","room":R}          → join R (default "lobby"), answer {"type":"welcome","room":R}
//   {"type":"say","room":R,"text":T}   → to every member of R, the sender included:
//                                        {"type":"message","room":R,"id":N,"from":ID,"text":T}
// One JSON.stringify per message, sent as the same string to every member (what confab does with
// one encode and one broadcast). No compression (ws's server default), no checks beyond the types.
// Usage: node bench/ws_reference.mjs [HOST:]PORT  (port 0 picks one; logs "listening on HOST:PORT")
import { WebSocketServer } from 'ws';

const arg = process.argv[2] || '127.0.0.1:0';
const colon = arg.lastIndexOf(':');
const host = colon > 0 ? arg.slice(0, colon) : '127.0.0.1';
const port = Number(colon >= 0 ? arg.slice(colon + 1) : arg);

const rooms = new Map();   // room -> { members: Set<ws>, lastId }
let nextId = 1;

const wss = new WebSocketServer({ host, port, path: '/ws', clientTracking: false });
wss.on('connection', (ws) => {
  const id = nextId++;
  const joined = [];
  ws.on('message', (data, isBinary) => {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'hello') {
      const name = typeof m.room === 'string' ? m.room : 'lobby';
      let room = rooms.get(name);
      if (!room) rooms.set(name, room = { members: new Set(), lastId: 0 });
      if (!room.members.has(ws)) { room.members.add(ws); joined.push(name); }
      ws.send(JSON.stringify({ type: 'welcome', room: name }));
    } else if (m.type === 'say' && typeof m.room === 'string' && typeof m.text === 'string') {
      const room = rooms.get(m.room);
      if (!room) return;
      const frame = JSON.stringify({ type: 'message', room: m.room, id: ++room.lastId, from: id,
                                     text: m.text });
      for (const member of room.members) member.send(frame);
    }
  });
  ws.on('close', () => {
    for (const name of joined) {
      const room = rooms.get(name);
      room.members.delete(ws);
      if (room.members.size === 0) rooms.delete(name);
    }
  });
});
wss.on('listening', () => {
  const a = wss.address();
  process.stderr.write(`listening on ${a.address}:${a.port}\n`);
});
wss.on('error', (e) => { process.stderr.write(`ws_reference: ${e.message}\n`); process.exit(2); });
process.on('SIGTERM', () => process.exit(0));
