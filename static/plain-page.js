// A page anybody may see (the console's 404): only its own text, in the person's language.

import { setup as setupLanguage, translatePage } from "./i18n.js";

setupLanguage({ zone: "UTC" });
translatePage();
