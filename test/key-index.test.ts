import { describe, expect, it } from 'vitest';
import { createKeyIndex } from '../gateway/pipeline/stages/authenticate.js';

const keys = [
  { id: 'team-a', key: 'sk-team-a-0123456789', models: ['*'] },
  { id: 'team-b', key: 'sk-team-b-0123456789', models: ['gpt-*'] },
] as Parameters<typeof createKeyIndex>[0];

describe('virtual key index', () => {
  const index = createKeyIndex(keys);

  it('finds each key by its bearer token, whatever the scheme case and spacing', () => {
    expect(index.find('Bearer sk-team-a-0123456789')?.key.id).toBe('team-a');
    expect(index.find('bearer   sk-team-b-0123456789  ')?.key.id).toBe('team-b');
    expect(index.find('BEARER\tsk-team-a-0123456789')?.key.id).toBe('team-a');
  });

  it('refuses unknown, partial, extended and malformed tokens', () => {
    for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Bearer    ', 'Basic sk-team-a-0123456789', 'sk-team-a-0123456789', 'Bearer sk-team-a-012345678', 'Bearer sk-team-a-01234567890', 'Bearer SK-TEAM-A-0123456789']) {
      expect(index.find(h), String(h)).toBeUndefined();
    }
  });

  it('applies each key\'s model globs', () => {
    expect(index.find('Bearer sk-team-b-0123456789')!.allows('gpt-4o-mini')).toBe(true);
    expect(index.find('Bearer sk-team-b-0123456789')!.allows('claude-3')).toBe(false);
  });

  it('is off without keys', () => {
    expect(createKeyIndex([]).enabled).toBe(false);
  });
});
