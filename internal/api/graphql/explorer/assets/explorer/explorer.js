// Starts GraphiQL on the auditstream GraphQL explorer page.
//
// It is a file, not an inline script, so that the page's Content-Security-Policy can keep
// script-src to 'self'. It needs the globals React, ReactDOM and GraphiQL, which the page
// loads before it.
(function () {
  'use strict';

  var TOKEN_KEY = 'auditstream.graphql-explorer.token';

  var DEFAULT_QUERY = [
    '# Welcome to the auditstream GraphQL explorer.',
    '#',
    '# Paste a personal access token into the "Personal access token" field above: it is',
    '# sent as the PRIVATE-TOKEN header with each request and kept only in this tab\'s',
    '# session storage. Without one, requests are anonymous.',
    '#',
    '# Run the query with Ctrl-Enter (Cmd-Enter on a Mac) or the run button.',
    'query {',
    '  currentUser {',
    '    username',
    '  }',
    '  auditEventDefinitions(first: 5) {',
    '    nodes {',
    '      name',
    '      featureCategory',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n');

  var container = document.getElementById('graphiql');
  var tokenInput = document.getElementById('explorer-token-input');
  var endpoint = container.getAttribute('data-endpoint');

  // sessionStorage can throw (storage disabled, sandboxed frame); the field still works then.
  function loadToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  function saveToken(token) {
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      // Not persisted; the value in the field is still used.
    }
  }

  function currentToken() {
    return tokenInput.value.trim();
  }

  // tokenFetch is the fetch that GraphiQL's fetcher uses: it adds the token, read at the
  // time of each request, as the PRIVATE-TOKEN header.
  function tokenFetch(url, init) {
    var options = Object.assign({}, init);
    var headers = new Headers(options.headers || {});
    var token = currentToken();
    if (token) {
      headers.set('PRIVATE-TOKEN', token);
    }
    options.headers = headers;
    options.credentials = 'same-origin';
    return window.fetch(url, options);
  }

  var root = ReactDOM.createRoot(container);

  // render mounts GraphiQL with a new fetcher. A new fetcher makes GraphiQL load the schema
  // again, so a changed token also changes what the documentation and autocompletion show.
  function render() {
    var fetcher = GraphiQL.createFetcher({ url: endpoint, fetch: tokenFetch });
    root.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultEditorToolsVisibility: true,
        defaultQuery: DEFAULT_QUERY
      })
    );
  }

  tokenInput.value = loadToken();
  tokenInput.addEventListener('input', function () {
    saveToken(currentToken());
  });
  // "change" fires when the field loses focus or on Enter, not on each key.
  tokenInput.addEventListener('change', render);
  // Enter must not submit the form: the page has nowhere to send it (CSP form-action 'none').
  document.getElementById('explorer-token-form').addEventListener('submit', function (event) {
    event.preventDefault();
  });

  render();
})();
