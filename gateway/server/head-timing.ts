/**
 * How long a streamed response's head may wait for its first chunk before it is sent
 * alone (both servers): clients with a response-header timeout see the stream start
 * while a model thinks, and a stream that fails before its first event can still be
 * answered with a plain error status (HttpResponse.retractHead).
 */
export const HEAD_ALONE_AFTER_MS = 1000;
