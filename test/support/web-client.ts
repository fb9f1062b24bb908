/** A minimal browser for the web app's refusal tests: a cookie jar, no redirects followed, forms posted as a browser would. */
export interface WebResponse {
  status: number;
  location: string | null;
  text: string;
}

export class WebClient {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  private async send(path: string, init: RequestInit): Promise<WebResponse> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${this.base}${path}`, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/Max-Age=0/i.test(c) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: res.status, location: res.headers.get('location'), text: await res.text() };
  }

  get(path: string): Promise<WebResponse> {
    return this.send(path, { method: 'GET' });
  }

  post(path: string, form: Record<string, string>): Promise<WebResponse> {
    return this.send(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** Signs in through a one-time link: the confirmation page, then its form. */
  async signInWithLink(url: string): Promise<WebResponse> {
    const path = new URL(url).pathname;
    const page = await this.get(path);
    if (page.status !== 200) return page;
    return this.post(path, { _csrf: csrfOf(page.text) });
  }
}

export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no CSRF token in the page:\n${html.slice(0, 500)}`);
  return m[1]!;
}

/** The text of <main>, without tags, for assertions on what a person reads. */
export const mainText = (html: string) =>
  (/<main[^>]*>([\s\S]*)<\/main>/.exec(html)?.[1] ?? html)
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
