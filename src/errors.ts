// Errors caused by the user's input (a bad file, a bad schedule, a bad option). The CLI prints
// their message as one line and exits 1, with no stack trace; anything else is a bug and is
// reported with its stack.
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}
