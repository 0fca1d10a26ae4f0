/**
 * Progress of moving an image's blobs (pull, push, the compression before a push): the events
 * registry/ emits and ui/ renders. A blob is named by its digest, as in the rest of the data model;
 * the type lives here, below both, so that ui/ need not import registry/.
 */
export type TransferEvent =
  | { type: 'resolved'; ref: string; digest: string; layers: { digest: string; size: number }[] }
  | {
      type: 'blob';
      digest: string;
      state: 'present' | 'exists' | 'mounted' | 'downloading' | 'uploading' | 'done' | 'compressing';
      current: number;
      total: number;
    }
  | { type: 'retry'; what: string; attempt: number; reason: string };
