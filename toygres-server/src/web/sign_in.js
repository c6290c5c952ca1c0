// The sign-in page: stores the token in a SameSite=Strict cookie and reloads.
'use strict';

document.getElementById('sign-in').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = document.getElementById('token').value.trim();
  // Over HTTPS the browser sends the token back over HTTPS only.
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = 'toygres_token=' + encodeURIComponent(token) + '; path=/; SameSite=Strict' + secure;
  location.reload();
});
