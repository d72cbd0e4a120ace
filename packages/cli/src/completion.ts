/**
 * `nexus-proxy completion bash|zsh|fish`: shell completion scripts generated from the commander program
 * itself (its commands, options and option choices), so they never drift from the command line.
 * Commander has no completion of its own; the scripts are small and need nothing installed.
 */
import type { Command, Option } from 'commander';
import { CliError } from './errors.js';

/** Shells `completion` writes a script for. */
export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

interface OptionSpec {
  /** `--log-format`, `-c`. */
  readonly names: string[];
  readonly description: string;
  /** Takes a value. */
  readonly takesValue: boolean;
  /** The values it accepts, when fixed. */
  readonly choices: readonly string[] | undefined;
  /** The value is a path (`<file>`, `<dir>`). */
  readonly path: boolean;
}

interface CommandSpec {
  /** Names from the program down, e.g. `['config', 'schema']` (the program itself: `[]`). */
  readonly path: string[];
  readonly description: string;
  readonly options: OptionSpec[];
  readonly subcommands: CommandSpec[];
  /** Values its first argument accepts, when fixed (`completion <shell>`). */
  readonly argChoices: readonly string[];
}

function optionSpec(option: Option): OptionSpec {
  const names = [option.long, option.short].filter((n): n is string => n !== undefined);
  const takesValue = option.required || option.optional;
  return {
    names,
    description: option.description,
    takesValue,
    choices: option.argChoices,
    path: takesValue && /<(file|dir|[a-z-]*-file|[a-z-]*-dir)>/.test(option.flags),
  };
}

function commandSpec(command: Command, path: string[]): CommandSpec {
  const help = command.createHelp();
  return {
    path,
    description: command.description(),
    options: help.visibleOptions(command).map(optionSpec),
    subcommands: help
      .visibleCommands(command)
      .filter((c) => c.name() !== 'help')
      .map((c) => commandSpec(c, [...path, c.name()])),
    argChoices: command.registeredArguments[0]?.argChoices ?? [],
  };
}

function all(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.subcommands.flatMap(all)];
}

/** `'…'` for the shells (single quotes cannot be escaped inside, so they are closed and reopened). */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function functionName(program: string): string {
  return `_${program.replace(/[^A-Za-z0-9]/g, '_')}_complete`;
}

/** Bash (and, through bashcompinit, zsh): a `case` on the command path and on the previous word. */
function bashScript(program: string, root: CommandSpec): string {
  const fn = functionName(program);
  const commands = all(root);
  const cases = commands.map((c) => {
    const words = [
      ...c.subcommands.map((s) => s.path.at(-1)!),
      ...c.argChoices,
      ...c.options.flatMap((o) => o.names),
    ];
    const values = c.options
      .filter((o) => o.takesValue)
      .map((o) => {
        const reply =
          o.choices !== undefined
            ? `COMPREPLY=($(compgen -W ${quote(o.choices.join(' '))} -- "$cur"))`
            : o.path
              ? 'COMPREPLY=($(compgen -f -- "$cur"))'
              : 'COMPREPLY=()';
        return `        ${o.names.join('|')}) ${reply}; return ;;`;
      });
    return [
      `    ${quote(c.path.join(' '))})`,
      '      case "$prev" in',
      ...values,
      '      esac',
      `      COMPREPLY=($(compgen -W ${quote(words.join(' '))} -- "$cur"))`,
      '      ;;',
    ].join('\n');
  });
  const subcommandsOf = commands
    .filter((c) => c.subcommands.length > 0)
    .map(
      (c) =>
        `    ${quote(c.path.join(' '))}) subs=${quote(c.subcommands.map((s) => s.path.at(-1)!).join(' '))} ;;`,
    );
  const takesValue = [
    ...new Set(commands.flatMap((c) => c.options.filter((o) => o.takesValue).flatMap((o) => o.names))),
  ];
  return `# ${program} completion for bash (written by \`${program} completion bash\`).
# Load it: source <(${program} completion bash), or save it as
# /etc/bash_completion.d/${program} (~/.local/share/bash-completion/completions/${program}).
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" subs word i
  # The command path: the subcommands typed so far (options and their values skipped).
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      ${takesValue.length > 0 ? `${takesValue.join('|')}) ((i++)); continue ;;` : ''}
      -*) continue ;;
    esac
    subs=""
    case "$path" in
${subcommandsOf.join('\n')}
    esac
    case " $subs " in
      *" $word "*) path="\${path:+$path }$word" ;;
    esac
  done
  case "$path" in
${cases.join('\n')}
  esac
}
complete -o default -F ${fn} ${program}
`;
}

function zshScript(program: string, root: CommandSpec): string {
  return `#compdef ${program}
# ${program} completion for zsh (written by \`${program} completion zsh\`): the bash completion, through
# zsh's bashcompinit. Load it: source <(${program} completion zsh), or save it as _${program} in a
# directory of $fpath.
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(program, root)}`;
}

/** Fish: one `complete` line per subcommand and option, conditioned on the command path. */
function fishScript(program: string, root: CommandSpec): string {
  const lines = [
    `# ${program} completion for fish (written by \`${program} completion fish\`).`,
    `# Load it: ${program} completion fish | source, or save it as ~/.config/fish/completions/${program}.fish`,
    `complete -c ${program} -f`,
  ];
  // The command path, as fish sees it: the last subcommand typed decides (names are unique per level).
  const condition = (c: CommandSpec): string => {
    if (c.path.length === 0) {
      const top = root.subcommands.map((s) => s.path[0]!).join(' ');
      return `not __fish_seen_subcommand_from ${top}`;
    }
    const inner = c.subcommands.map((s) => s.path.at(-1)!);
    const own = `__fish_seen_subcommand_from ${c.path.at(-1)!}`;
    return inner.length === 0 ? own : `${own}; and not __fish_seen_subcommand_from ${inner.join(' ')}`;
  };
  for (const c of all(root)) {
    const when = quote(condition(c));
    for (const s of c.subcommands) {
      lines.push(`complete -c ${program} -n ${when} -a ${s.path.at(-1)!} -d ${quote(s.description)}`);
    }
    if (c.argChoices.length > 0)
      lines.push(`complete -c ${program} -n ${when} -a ${quote(c.argChoices.join(' '))}`);
    for (const o of c.options) {
      const names = o.names
        .map((n) => (n.startsWith('--') ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`))
        .join(' ');
      const value =
        o.choices !== undefined
          ? ` -x -a ${quote(o.choices.join(' '))}`
          : o.path
            ? ' -r -F'
            : o.takesValue
              ? ' -x'
              : '';
      lines.push(`complete -c ${program} -n ${when} ${names}${value} -d ${quote(o.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The completion script of `program` for `shell`. Throws `CliError` for another shell. */
export function completionScript(program: Command, shell: string): string {
  const root = commandSpec(program, []);
  const name = program.name();
  switch (shell) {
    case 'bash':
      return bashScript(name, root);
    case 'zsh':
      return zshScript(name, root);
    case 'fish':
      return fishScript(name, root);
    default:
      throw new CliError(
        'NEXUS_ERR_USAGE',
        `completion: unknown shell ${JSON.stringify(shell)} (bash, zsh or fish)`,
      );
  }
}
