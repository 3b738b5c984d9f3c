// Type declarations of cstack.js (docs/web.md).

export type EnvelopeKind =
  | "create" | "create_many" | "find_unique" | "find_first" | "find_many" | "count"
  | "aggregate" | "update" | "update_many" | "upsert" | "delete" | "delete_many"
  | "hidden_rows" | "transaction";

export interface EnvelopeRequest {
  model?: string;
  kind: EnvelopeKind;
  payload?: Record<string, unknown>;
  bigintAsString?: boolean;
}

export type EnvelopeResponse<T = unknown> =
  | { status: "ok"; data: T }
  | { status: "err"; code: string; message: string };

export interface SyncStatus {
  readonly connected: boolean;
  readonly connecting: boolean;
  readonly uploading: boolean;
  readonly downloading: boolean;
  /** Rows merged in the current download, and the total when known (0 otherwise). */
  readonly downloaded: number;
  readonly downloadTotal: number;
  readonly pendingUploads: number;
  /** Milliseconds since the epoch of the last completed pull, or null. */
  readonly lastSyncedAt: number | null;
  readonly lastError: string | null;
}

export interface DatabaseInfo {
  storage: "opfs" | "memory" | "shared";
  role: "owner" | "proxy";
}

export interface Database {
  call<T = unknown>(request: EnvelopeRequest): Promise<EnvelopeResponse<T>>;
  watch<T = unknown>(request: EnvelopeRequest, callback: (response: EnvelopeResponse<T>) => void): () => void;
  connect(options: { server: string; token: string }): Promise<void>;
  disconnect(): Promise<void>;
  status(): SyncStatus;
  onStatus(callback: (status: SyncStatus) => void): () => void;
  info(): Promise<DatabaseInfo>;
  close(): Promise<void>;
}

export function openDatabase(options: { name: string; schema: string; workerUrl?: string | URL }): Promise<Database>;
