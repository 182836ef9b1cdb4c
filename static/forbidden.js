// The page a role may not open: the shared header (so the person can go where they may) and its text.

import { startPage } from "./page.js";

startPage().catch(() => null);
