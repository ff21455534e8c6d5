// The TSGI hello world every bench:e2e row answers with (same body and Content-Type).
const HEADERS = [['Content-Type', 'text/plain']];
const BODY = ['Hello, world!\n'];

export default function hello(_environ, startResponse) {
  startResponse('200 OK', HEADERS);
  return BODY;
}
