import { WebSocketServer, WebSocket } from 'ws';
import { createServer } from 'node:http';
const srv = createServer();
const wss = new WebSocketServer({ server: srv, perMessageDeflate: false, maxPayload: 32785 });
wss.on('connection', (ws) => {
  ws.on('close', (c, r) => console.log('server close', c, r.toString()));
  ws.on('error', (e) => console.log('server err', e.message));
});
srv.listen(0, '127.0.0.1', () => {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.address().port}/`, { perMessageDeflate: false });
  ws.on('open', () => {
    for (let i = 0; i < 50; i++) ws.ping();
  });
  ws.on('close', (c) => {
    console.log('client close', c);
    process.exit(0);
  });
  ws.on('error', (e) => console.log('client err', e.message));
  setTimeout(() => {
    console.log('alive', ws.readyState);
    process.exit(0);
  }, 1500);
});
