import { runCli } from './program.js';

void runCli();
