// The few parts of oidc-provider (which ships no types) that test/support/oidc-op.ts uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  interface Account {
    accountId: string;
    claims(): Promise<Record<string, unknown>>;
  }
  interface Interaction {
    uid: string;
    prompt: { name: string; details: unknown };
    grantId?: string;
    session?: { accountId: string };
    params: Record<string, unknown>;
  }
  interface Grant {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    save(): Promise<string>;
  }
  interface Configuration {
    clients: Record<string, unknown>[];
    scopes: string[];
    claims: Record<string, string[]>;
    features: Record<string, unknown>;
    interactions: { url: (ctx: unknown, interaction: { uid: string }) => string };
    cookies: { keys: string[] };
    pkce: { required: () => boolean };
    ttl: Record<string, number>;
    findAccount(ctx: unknown, sub: string): Promise<Account | undefined>;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
    Grant: { new (o: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> };
  }
}
