/** Runs async operations one at a time, in call order (a mutex for the agent's state changes). */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op, op);
    this.tail = result.catch(() => {});
    return result;
  }
}
