import { afterAll } from 'vitest';
import { killAllChildren } from './children.ts';

// a setup file: runs in every test file, after the file's own afterAll hooks (vitest runs "after" hooks as a stack)
afterAll(killAllChildren);
