/** `count` distinct ports free on 127.0.0.1 now, below the kernel's ephemeral range (see ports.mjs). */
export function portsToBind(count: number): Promise<number[]>;
