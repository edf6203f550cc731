// A value that changes over time: panels subscribe and get the latest value at once, then every update.
export class Feed<T> {
  private readonly listeners = new Set<(value: T) => void>();
  private latest: { value: T } | null = null;

  get value(): T | undefined {
    return this.latest?.value;
  }

  publish(value: T): void {
    this.latest = { value };
    for (const listener of this.listeners) listener(value);
  }

  subscribe(listener: (value: T) => void): void {
    this.listeners.add(listener);
    if (this.latest) listener(this.latest.value);
  }
}
