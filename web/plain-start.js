// plain.html's start: plain mode at once (plain.js), at the path of ?ws= (default /ws).
'use strict';
window.confabPlain.start();
