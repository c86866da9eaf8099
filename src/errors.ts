// Errors caused by the user's input (a bad file, a bad schedule, a bad option). The CLI prints
// their message as one line and exits 1, with no stack trace; anything else is a bug and is
// reported with its stack.
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "is a folder, not a file",
  ENOTDIR: "no such file (a parent is not a folder)",
};

/**
 * A file that could not be read, worded as the GGUF reader words it (src/gguf/source.ts): one
 * wording for a missing file everywhere.
 */
export function readFileError(file: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  return new UserError(`${file}: ${(code && READ_ERRORS[code]) ?? `cannot read (${code ?? (err as Error).message})`}`);
}
