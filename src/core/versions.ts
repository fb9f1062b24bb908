/**
 * The versions a caller decides on: one (a page, a card, `--if-version`), or those an If-Match header lists, any of
 * which will do. An empty list matches none: If-Match gave only weak tags, which strong comparison never matches.
 */
export type ExpectedVersion = number | readonly number[];

export const versionMatches = (version: number, expected: ExpectedVersion | undefined): boolean =>
  expected === undefined || (typeof expected === 'number' ? version === expected : expected.includes(version));

/** Why a decision made on `expected` does not apply to the row at `version`, up to the state named after it. */
export function staleVersion(what: 'request' | 'change', expected: ExpectedVersion, version: number): string {
  if (typeof expected === 'number') {
    return expected < version
      ? `This ${what} changed since version ${expected}: it is now version ${version}`
      : `This ${what} was never at version ${expected}: it is at version ${version}`;
  }
  return expected.length === 0
    ? `If-Match named only weak ETags, which never match: this ${what} is at version ${version}`
    : `This ${what} is at version ${version}, none of ${expected.join(', ')}`;
}
