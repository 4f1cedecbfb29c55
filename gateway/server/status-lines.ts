import { STATUS_CODES } from 'node:http';

/** "200 OK" etc., built once: uWS wants the whole status line. */
const LINES: string[] = [];
for (const [code, text] of Object.entries(STATUS_CODES)) LINES[Number(code)] = `${code} ${text}`;

export function statusLine(status: number): string {
  return LINES[status] ?? `${status} Unknown`;
}
