console.log('module b');
