/**
 * Glob patterns for model aliases and key ids (`*`, `?`, `gpt-4o*`), compiled to one
 * RegExp at start-up so matching on the hot path is a single test().
 */
function globToSource(glob: string): string {
  return glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
}

export function compileGlob(glob: string): RegExp {
  return new RegExp(`^${globToSource(glob)}$`);
}

/** A predicate true when the value matches any of the globs. */
export function compileGlobs(globs: readonly string[]): (value: string) => boolean {
  if (globs.includes('*')) return () => true;
  if (globs.length === 0) return () => false;
  const re = new RegExp(`^(?:${globs.map(globToSource).join('|')})$`);
  return (value) => re.test(value);
}
