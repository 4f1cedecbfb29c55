/**
 * A key's spend as GET /v1/usage reports it, once every reservation has settled (the
 * settle runs after the response, so a test reads it when nothing is held any more).
 */
export async function settledSpend(gatewayUrl: string, key: string): Promise<{ spent_usd: number; tokens: number }> {
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${gatewayUrl}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
    const day = ((await r.json()) as { budget: { day: { spent_usd: number; reserved_usd: number; tokens: number } } }).budget.day;
    if (day.reserved_usd === 0) return day;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error('reservations never settled');
}
